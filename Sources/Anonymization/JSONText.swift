/// A JSON document as `json` and `jsonb` columns print it, read so that writing it back
/// changes nothing a reader relies on: members keep their order (a `json` column keeps
/// its text's order and duplicate keys), numbers keep their digits (`1.50`, a 30-digit
/// integer), strings are decoded. What the `json` rule walks and masks by path.
///
/// Foundation's `JSONSerialization` reorders members, folds duplicates and reads numbers
/// as `Double` (losing digits a kept value must keep), hence this reader.
public indirect enum JSONText: Equatable, Sendable {
    case object([(key: String, value: JSONText)])
    case array([JSONText])
    case string(String)
    /// The number's text as written.
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: JSONText, b: JSONText) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(x), .array(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.number(x), .number(y)): x == y
        case let (.bool(x), .bool(y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    /// Reads a document; nil when the text is not JSON.
    public init?(parsing text: String) {
        var reader = Reader(bytes: Array(text.utf8))
        guard let value = reader.value(depth: 0) else { return nil }
        reader.skipSpace()
        guard reader.i == reader.bytes.count else { return nil }
        self = value
    }

    /// Compact JSON text (`{"a":1,"b":[true,null]}`); strings escaped as RFC 8259 asks.
    public var text: String {
        var out: [UInt8] = []
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func write(into out: inout [UInt8]) {
        switch self {
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, m) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                m.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .string(let s): Self.writeString(s, into: &out)
        case .number(let n): out += n.utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .null: out += "null".utf8
        }
    }

    /// A JSON string, escaped as the JSON-lines format writes it.
    static func writeString(_ s: String, into out: inout [UInt8]) {
        JSONLine.string(s, into: &out)
    }

    /// True when `text` is a JSON number (what a masked number may be written as).
    static func isNumber(_ text: String) -> Bool { JSONLine.isJSONNumber(text) }

    struct Reader {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func value(depth: Int) -> JSONText? {
            guard depth < 1000 else { return nil }
            skipSpace()
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(key: String, value: JSONText)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let v = value(depth: depth + 1) else { return nil }
                    members.append((key, v))
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONText] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let v = value(depth: depth + 1) else { return nil }
                    items.append(v)
                    skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    return nil
                }
            case UInt8(ascii: "\""):
                return string().map(JSONText.string)
            case UInt8(ascii: "t"): return literal("true", .bool(true))
            case UInt8(ascii: "f"): return literal("false", .bool(false))
            case UInt8(ascii: "n"): return literal("null", .null)
            default: return number()
            }
        }

        mutating func literal(_ word: String, _ value: JSONText) -> JSONText? {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { return nil }
            i += w.count
            return value
        }

        mutating func number() -> JSONText? {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            func digits() -> Int {
                let from = i
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
                return i - from
            }
            let whole = digits()
            guard whole > 0, whole == 1 || bytes[i - whole] != 0x30 else { return nil }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { return nil }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { return nil }
            }
            return .number(String(decoding: bytes[start..<i], as: UTF8.self))
        }

        mutating func string() -> String? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            guard case .success(let out) = JSONStringBody.decode(bytes, at: &i, strict: true) else { return nil }
            return String(decoding: out, as: UTF8.self)
        }
    }
}

/// The body of a JSON string after its opening quote, up to and past the closing one: what
/// the JSON value parser (strict, as PostgreSQL's json input) and the JSON-lines row reader
/// (lenient: dbq's own output, any other escaped character taken as itself) both read.
enum JSONStringBody {
    enum Failure: Error { case unterminated, badEscape, badUnicodeEscape, controlCharacter }

    static func decode<Bytes: RandomAccessCollection>(_ bytes: Bytes, at i: inout Int, strict: Bool) -> Result<[UInt8], Failure>
    where Bytes.Element == UInt8, Bytes.Index == Int {
        var out: [UInt8] = []
        while i < bytes.endIndex {
            let b = bytes[i]
            i += 1
            if b == UInt8(ascii: "\"") { return .success(out) }
            if strict, b < 0x20 { return .failure(.controlCharacter) }
            guard b == 0x5C else { out.append(b); continue }
            guard i < bytes.endIndex else { return .failure(.unterminated) }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var unit = hex4(bytes, at: &i) else { return .failure(.badUnicodeEscape) }
                // A surrogate pair: the low half follows as an escape of its own.
                if (0xD800..<0xDC00).contains(unit), i + 1 < bytes.endIndex, bytes[i] == 0x5C, bytes[i + 1] == UInt8(ascii: "u") {
                    var j = i + 2
                    if let low = hex4(bytes, at: &j), (0xDC00..<0xE000).contains(low) {
                        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        i = j
                    } else if strict {
                        return .failure(.badUnicodeEscape)
                    }
                }
                // A lone surrogate (valid in `json`, not in `jsonb`) is kept as U+FFFD.
                out += String(Unicode.Scalar(unit) ?? "\u{FFFD}").utf8
            case UInt8(ascii: "\""), 0x5C, UInt8(ascii: "/"): out.append(e)
            default:
                if strict { return .failure(.badEscape) }
                out.append(e)
            }
        }
        return .failure(.unterminated)
    }

    /// Four hex digits at `i` (advanced past them only when all four are).
    static func hex4<Bytes: RandomAccessCollection>(_ bytes: Bytes, at i: inout Int) -> UInt32? where Bytes.Element == UInt8, Bytes.Index == Int {
        guard i + 4 <= bytes.endIndex else { return nil }
        var v: UInt32 = 0
        for k in i..<i + 4 {
            let b = bytes[k]
            let d: UInt8
            switch b {
            case 0x30...0x39: d = b - 0x30
            case 0x41...0x46: d = b - 0x41 + 10
            case 0x61...0x66: d = b - 0x61 + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        i += 4
        return v
    }
}
