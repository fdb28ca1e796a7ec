/// Counts the rows of a binary `COPY` stream as it passes, without keeping it: the
/// signature and header, then per row a 16-bit field count and each field's 32-bit length
/// (−1 for NULL) and bytes, up to the −1 trailer. Lets a rollback know a snapshot table's
/// rows before it locks anything. Pure.
public struct BinaryCopyCounter: Sendable {
    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
    }

    static let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]

    enum State: Sendable {
        /// Reading `need` bytes into `number` (big-endian), then `then`.
        case signature(Int)
        case header(need: Int, number: Int64, field: HeaderField)
        case fieldCount(need: Int, number: Int64)
        case fieldLength(need: Int, number: Int64, left: Int)
        case skip(Int64, left: Int)
        case trailer
    }

    enum HeaderField: Sendable { case flags, extensionLength }

    private var state = State.signature(0)
    public private(set) var rows: Int64 = 0
    public var finished: Bool { if case .trailer = state { true } else { false } }

    public init() {}

    /// The fast path: rows that lie wholly in `bytes` from `i`, read without the state
    /// machine; stops (state unchanged) at the first row that runs past the end.
    private mutating func wholeRows(_ bytes: [UInt8], _ i: inout Int) throws(Malformed) {
        let n = bytes.count
        try bytes.withUnsafeBufferPointer { (b: UnsafeBufferPointer<UInt8>) throws(Malformed) in
            while i + 2 <= n {
                let count = Int(Int16(bitPattern: UInt16(b[i]) << 8 | UInt16(b[i + 1])))
                if count == -1 { i += 2; state = .trailer; return }
                guard count >= 0 else { throw Malformed(description: "a row with \(count) fields") }
                var j = i + 2
                var whole = true
                for _ in 0..<count {
                    guard j + 4 <= n else { whole = false; break }
                    let length = Int(Int32(bitPattern: UInt32(b[j]) << 24 | UInt32(b[j + 1]) << 16 | UInt32(b[j + 2]) << 8 | UInt32(b[j + 3])))
                    guard length >= -1 else { throw Malformed(description: "a field of length \(length)") }
                    j += 4 + max(length, 0)
                    guard j <= n else { whole = false; break }
                }
                guard whole else { return }
                rows += 1
                i = j
            }
        }
    }

    public mutating func feed(_ bytes: [UInt8]) throws(Malformed) {
        var i = 0
        while i < bytes.count {
            if case .fieldCount(2, 0) = state { try wholeRows(bytes, &i) }
            guard i < bytes.count else { break }
            switch state {
            case .signature(let read):
                guard bytes[i] == Self.signature[read] else { throw Malformed(description: "not a binary COPY stream (no PGCOPY signature)") }
                i += 1
                state = read + 1 == Self.signature.count ? .header(need: 4, number: 0, field: .flags) : .signature(read + 1)
            case .header(let need, let number, let field):
                let value = number << 8 | Int64(bytes[i]); i += 1
                if need > 1 { state = .header(need: need - 1, number: value, field: field); continue }
                switch field {
                case .flags: state = .header(need: 4, number: 0, field: .extensionLength)
                case .extensionLength: state = value > 0 ? .skip(value, left: -1) : .fieldCount(need: 2, number: 0)
                }
            case .fieldCount(let need, let number):
                let value = number << 8 | Int64(bytes[i]); i += 1
                if need > 1 { state = .fieldCount(need: need - 1, number: value); continue }
                let count = Int(Int16(truncatingIfNeeded: value))
                if count == -1 { state = .trailer; continue }
                guard count >= 0 else { throw Malformed(description: "a row with \(count) fields") }
                rows += 1
                state = count == 0 ? .fieldCount(need: 2, number: 0) : .fieldLength(need: 4, number: 0, left: count)
            case .fieldLength(let need, let number, let left):
                let value = number << 8 | Int64(bytes[i]); i += 1
                if need > 1 { state = .fieldLength(need: need - 1, number: value, left: left); continue }
                let length = Int64(Int32(truncatingIfNeeded: value))
                if length > 0 { state = .skip(length, left: left - 1) }
                else if length == -1 || length == 0 { state = left > 1 ? .fieldLength(need: 4, number: 0, left: left - 1) : .fieldCount(need: 2, number: 0) }
                else { throw Malformed(description: "a field of length \(length)") }
            case .skip(let n, let left):
                let take = Int(min(Int64(bytes.count - i), n))
                i += take
                if Int64(take) < n { state = .skip(n - Int64(take), left: left); continue }
                // left −1: the header extension; then the rows begin.
                state = left == -1 || left == 0 ? .fieldCount(need: 2, number: 0) : .fieldLength(need: 4, number: 0, left: left)
            case .trailer:
                throw Malformed(description: "bytes after the trailer")
            }
        }
    }
}
