/// How an export writes a table's rows: PostgreSQL's COPY text (the default, loaded back
/// fastest), CSV with a header line (for spreadsheets and other tools), or JSON Lines (one
/// object per row, numbers and booleans typed).
public enum RowFormat: String, Codable, Sendable, CaseIterable {
    case copy, csv, jsonl

    public init(parsing text: String) throws(AnonymizationError) {
        guard let format = RowFormat(rawValue: text) else {
            throw AnonymizationError("format '\(text)' is not one of copy, csv, jsonl")
        }
        self = format
    }

    /// The object name's suffix before the codec's (`public.users.csv.zst`).
    public var fileExtension: String { rawValue }

    /// The first line of a table's stream: CSV's header; nothing for the others.
    public func header(_ columns: [String]) -> [UInt8] {
        guard self == .csv else { return [] }
        var out: [UInt8] = []
        CSVText.encode(columns, into: &out)
        return out
    }

    /// One row (with its newline).
    public func encode(_ fields: [String?], names: [String], kinds: [ValueKind], into out: inout [UInt8]) {
        switch self {
        case .copy: CopyText.encode(fields, into: &out)
        case .csv: CSVText.encode(fields, into: &out)
        case .jsonl: JSONLine.encode(fields, names: names, kinds: kinds, into: &out)
        }
    }
}

/// CSV as PostgreSQL's `COPY … (FORMAT csv)` reads it: a NULL is an empty unquoted field,
/// an empty string is `""`; fields with a comma, quote, CR, LF or surrounding space are
/// quoted, quotes doubled.
public enum CSVText {
    public static func encode(_ fields: [String?], into out: inout [UInt8]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let field else { continue }
            let bytes = field.utf8
            let needsQuotes = bytes.isEmpty || bytes.first == 0x20 || bytes.last == 0x20
                || bytes.contains { $0 == UInt8(ascii: ",") || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }
                || field == "\\."
            guard needsQuotes else { out += bytes; continue }
            out.append(0x22)
            for b in bytes {
                if b == 0x22 { out.append(0x22) }
                out.append(b)
            }
            out.append(0x22)
        }
        out.append(0x0A)
    }
}

/// One JSON object per line, keys in column order. Integers, decimals and booleans are
/// typed (decimals as written, never through a binary float); everything else is a string.
public enum JSONLine {
    public static func encode(_ fields: [String?], names: [String], kinds: [ValueKind], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (i, field) in fields.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            string(names[i], into: &out)
            out.append(UInt8(ascii: ":"))
            guard let field else { out += Array("null".utf8); continue }
            switch kinds[i] {
            case .boolean where field == "t" || field == "f":
                out += Array((field == "t" ? "true" : "false").utf8)
            case .integer where isJSONNumber(field), .decimal where isJSONNumber(field):
                out += field.utf8
            default:
                string(field, into: &out)
            }
        }
        out += [UInt8(ascii: "}"), 0x0A]
    }

    /// The fields of one line this encoder wrote, in `names` order, as COPY would read them:
    /// numbers as written, booleans as t/f, null as nil. A line that is not such an object
    /// is named by its problem.
    public static func decode(_ line: ArraySlice<UInt8>, names: [String]) throws(AnonymizationError) -> [String?] {
        var parser = Parser(bytes: line)
        let object = try parser.object()
        var fields: [String?] = []
        fields.reserveCapacity(names.count)
        for name in names {
            guard let value = object[name] else { throw AnonymizationError("a JSON line has no field '\(name)'") }
            fields.append(value)
        }
        return fields
    }

    static func isJSONNumber(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        guard let first = bytes.first, (0x30...0x39).contains(first) else { return false }
        if first == 0x30, bytes.count > 1, (0x30...0x39).contains(bytes[bytes.startIndex + 1]) { return false }
        var seenDot = false, seenExponent = false, lastWasDigit = false
        for b in bytes {
            switch b {
            case 0x30...0x39: lastWasDigit = true
            case UInt8(ascii: ".") where !seenDot && !seenExponent && lastWasDigit: seenDot = true; lastWasDigit = false
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                guard !seenExponent, lastWasDigit else { return false }
                seenExponent = true; lastWasDigit = false
            default: return false
            }
        }
        return lastWasDigit
    }

    static func string(_ text: String, into out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        out.append(0x22)
        for b in text.utf8 {
            switch b {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20: out += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, digits[Int(b >> 4)], digits[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    /// Just enough JSON for a flat object of scalars.
    struct Parser {
        let bytes: ArraySlice<UInt8>
        var i: Int
        init(bytes: ArraySlice<UInt8>) { self.bytes = bytes; i = bytes.startIndex }

        mutating func skipSpace() { while i < bytes.endIndex, [0x20, 0x09, 0x0D, 0x0A].contains(bytes[i]) { i += 1 } }
        mutating func expect(_ c: Character) throws(AnonymizationError) {
            skipSpace()
            guard i < bytes.endIndex, bytes[i] == c.asciiValue! else {
                throw AnonymizationError("a JSON line is not a flat object: expected '\(c)' at byte \(i - bytes.startIndex)")
            }
            i += 1
        }

        mutating func object() throws(AnonymizationError) -> [String: String?] {
            try expect("{")
            var result: [String: String?] = [:]
            skipSpace()
            if i < bytes.endIndex, bytes[i] == UInt8(ascii: "}") { i += 1; return result }
            while true {
                skipSpace()
                let key = try string()
                try expect(":")
                result[key] = try value()
                skipSpace()
                guard i < bytes.endIndex else { throw AnonymizationError("a JSON line ends inside its object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                try expect("}")
                return result
            }
        }

        mutating func value() throws(AnonymizationError) -> String? {
            skipSpace()
            guard i < bytes.endIndex else { throw AnonymizationError("a JSON line ends where a value should be") }
            if bytes[i] == 0x22 { return try string() }
            let start = i
            while i < bytes.endIndex, ![UInt8(ascii: ","), UInt8(ascii: "}"), 0x20].contains(bytes[i]) { i += 1 }
            let word = String(decoding: bytes[start..<i], as: UTF8.self)
            switch word {
            case "null": return nil
            case "true": return "t"
            case "false": return "f"
            default:
                guard isJSONNumber(word) else { throw AnonymizationError("a JSON line has '\(word)' where a value should be") }
                return word
            }
        }

        mutating func string() throws(AnonymizationError) -> String {
            guard i < bytes.endIndex, bytes[i] == 0x22 else { throw AnonymizationError("a JSON line has a key or value that is not a string") }
            i += 1
            switch JSONStringBody.decode(bytes, at: &i, strict: false) {
            case .success(let out): return String(decoding: out, as: UTF8.self)
            case .failure(.badUnicodeEscape): throw AnonymizationError("a JSON line has a bad \\u escape")
            case .failure: throw AnonymizationError("a JSON line ends inside a string")
            }
        }
    }
}
