/// PostgreSQL's `COPY … TEXT` row format: fields separated by tabs, `\N` for NULL, and
/// backslash escapes for backslash, newline, carriage return and tab (and the others
/// COPY accepts on input). Decoding and encoding are exact inverses for what COPY writes.
public enum CopyText {
    /// The fields of one line (without its newline); nil for NULL.
    public static func decode(_ line: ArraySlice<UInt8>) -> [String?] {
        var fields: [String?] = []
        var current: [UInt8] = []
        var isNull = false
        var i = line.startIndex
        func flush() {
            fields.append(isNull ? nil : String(decoding: current, as: UTF8.self))
            current.removeAll(keepingCapacity: true)
            isNull = false
        }
        while i < line.endIndex {
            let b = line[i]
            if b == 0x09 {
                flush()
            } else if b == 0x5C, i + 1 < line.endIndex {
                let n = line[i + 1]
                i += 1
                if n == UInt8(ascii: "N") && current.isEmpty && (i + 1 == line.endIndex || line[i + 1] == 0x09) {
                    isNull = true
                } else {
                    current.append(unescaped(n))
                }
            } else {
                current.append(b)
            }
            i += 1
        }
        flush()
        return fields
    }

    /// The byte a backslash escape stands for (`\n` → newline; `\x` → `x` for the others).
    @inline(__always)
    static func unescaped(_ n: UInt8) -> UInt8 {
        switch n {
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "v"): 0x0B
        default: n
        }
    }

    /// The bytes of one non-NULL field (without separators), unescaped.
    static func decodeField(_ field: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var i = field.startIndex
        while i < field.endIndex {
            let b = field[i]
            if b == 0x5C, i + 1 < field.endIndex {
                i += 1
                out.append(unescaped(field[i]))
            } else {
                out.append(b)
            }
            i += 1
        }
        return out
    }

    /// One line (with its newline) for `fields`.
    public static func encode(_ fields: [String?], into out: inout [UInt8]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { out.append(0x09) }
            encodeField(field, into: &out)
        }
        out.append(0x0A)
    }

    /// One field, escaped (`\N` for NULL), without a separator.
    public static func encodeField(_ field: String?, into out: inout [UInt8]) {
        guard var field else {
            out += [0x5C, UInt8(ascii: "N")]
            return
        }
        field.withUTF8 { encodeField(bytes: UnsafeRawBufferPointer($0), into: &out) }
    }

    /// One non-NULL field's bytes, escaped, without a separator.
    static func encodeField<Bytes: Collection<UInt8>>(bytes: Bytes, into out: inout [UInt8]) {
        // Most values need no escape: one copy.
        guard bytes.contains(where: { $0 == 0x5C || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) else {
            out.append(contentsOf: bytes)
            return
        }
        for b in bytes {
            switch b {
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            default: out.append(b)
            }
        }
    }
}
