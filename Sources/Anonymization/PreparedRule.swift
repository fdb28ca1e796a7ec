/// A masking rule bound to a key and a column kind, for masking many values: what can be
/// derived once (keyed hash states with their domain absorbed, permutation keys, lower-
/// cased name lists) is, and values go in and out as UTF-8 bytes, never as `String`s.
///
/// The export masks through these; `MaskingRule.apply` is the same function on strings
/// (for rules with a prepared form, `apply` calls it), so the two never disagree.
///
/// Every prepared rule is a class: taking one from a table's list of rules, on the path of
/// every value, is one reference count rather than a call to copy an opaque existential.
public protocol PreparedRule: AnyObject, Sendable {
    /// Appends the masked form of a non-NULL original (its decoded UTF-8 bytes) to `out`;
    /// false (and nothing appended) when the masked value is NULL.
    /// Throws when the value cannot be masked (a rule that cannot read it): nothing is
    /// ever written unmasked in its place.
    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) -> Bool
    /// `mask`, where a long number's permutation may wait in `batch` (its digits appended
    /// as they were, until the batch runs on `out`): what the export calls, a chunk of
    /// rows to a batch.
    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) throws(AnonymizationError) -> Bool
    /// True when the masked bytes hold a tab, newline, carriage return or backslash only if
    /// the original did: a COPY field without escapes then needs none after masking.
    var addsNoControl: Bool { get }
}

extension PreparedRule {
    public var addsNoControl: Bool { false }

    /// A rule that permutes no number masks at once.
    public func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) throws(AnonymizationError) -> Bool {
        try mask(value, into: &out)
    }
}

extension MaskingRule {
    /// A rule without a prepared form masks through `apply`.
    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        StringPrepared(rule: self, kind: kind, key: key)
    }
}

extension PreparedRule {
    /// The masked value of a non-NULL original as a string (nil for NULL).
    public func apply(_ value: String) throws(AnonymizationError) -> String? {
        var value = value
        var out: [UInt8] = []
        let present = value.withUTF8 { bytes in Result { () throws(AnonymizationError) in try mask(UnsafeRawBufferPointer(bytes), into: &out) } }
        return try present.get() ? String(decoding: out, as: UTF8.self) : nil
    }
}

/// Any rule, through its `apply`: one `String` in and out per value.
final class StringPrepared: PreparedRule {
    let rule: any MaskingRule
    let kind: ValueKind
    let key: AnonymizationKey

    init(rule: any MaskingRule, kind: ValueKind, key: AnonymizationKey) {
        self.rule = rule
        self.kind = kind
        self.key = key
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) -> Bool {
        guard let masked = try rule.apply(String(decoding: value, as: UTF8.self), kind: kind, key: key) else { return false }
        out += masked.utf8
        return true
    }
}

// MARK: - Bytes

enum Bytes {
    /// Appends the first `count` characters of the lower-case RFC 4648 base32 text of a
    /// 32-byte digest (no padding; 52 characters at most): what `base32(_:count:)` returns,
    /// without a `String`.
    @inline(__always)
    static func appendBase32(_ bytes: UnsafeRawBufferPointer, count: Int, into out: inout [UInt8]) {
        appendBase32(bytes, chars: 0..<min(max(count, 0), 52), into: &out)
    }

    /// Appends characters `chars` (within 0..<52) of the base32 text of a 32-byte digest:
    /// all 52 made without a branch, five bytes to eight characters at a time, on the stack.
    @inline(__always)
    static func appendBase32(_ bytes: UnsafeRawBufferPointer, chars: Range<Int>, into out: inout [UInt8]) {
        precondition(bytes.count == 32 && chars.lowerBound >= 0 && chars.upperBound <= 52, "base32 of a 32-byte digest")
        // Seven groups of five bytes (the last three zero: base32's padding bits) make 56
        // characters, of which the first 52 are the text.
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
        let alphabet = base32Alphabet
        withUnsafeMutableBytes(of: &text) { t in
            for group in 0..<7 {
                var v: UInt64 = 0
                for k in 0..<5 {
                    let i = group * 5 + k
                    v = v << 8 | (i < 32 ? UInt64(bytes[i]) : 0)
                }
                for c in 0..<8 { t[group * 8 + c] = alphabet[Int(truncatingIfNeeded: (v >> UInt64(35 - 5 * c)) & 31)] }
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[chars]))
        }
    }

    /// "abcdefghijklmnopqrstuvwxyz234567", written once and never freed: read by every
    /// thread that masks, with no reference to count.
    nonisolated(unsafe) static let base32Alphabet: UnsafePointer<UInt8> = {
        let letters = UnsafeMutablePointer<UInt8>.allocate(capacity: 32)
        for (i, c) in "abcdefghijklmnopqrstuvwxyz234567".utf8.enumerated() { letters[i] = c }
        return UnsafePointer(letters)
    }()

    /// A 64-bit number from 8 bytes of a digest, big-endian (as `word(_:at:)`).
    @inline(__always)
    static func word(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }

    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.allSatisfy { $0 < 0x80 }
    }

    /// Appends the decimal digits of `n`.
    static func appendDecimal(_ n: Int64, into out: inout [UInt8]) {
        if n < 0 { out.append(0x2D) }
        var magnitude = n.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(0x30 + magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }
}
