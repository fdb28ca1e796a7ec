import PostgresClient

/// An index's keys as `pg_get_indexdef` writes them in its whole statement, with what the
/// per-column form leaves out: operator class, collation, ordering. Two indexes are the
/// same only when these are the same too (a `text_pattern_ops` index serves `LIKE 'a%'`,
/// a plain one does not).
public enum IndexKey {
    /// The key list and the INCLUDE list of a `CREATE INDEX` statement as the server
    /// prints it; nil when it does not have that shape.
    public static func split(definition: String) -> (keys: [String], include: [String])? {
        let text = Array(definition.unicodeScalars)
        guard let open = firstOpen(text, from: 0), let (keys, end) = list(text, open: open) else { return nil }
        var include: [String] = []
        let rest = String(String.UnicodeScalarView(text[end...]))
        if rest.hasPrefix(" INCLUDE ("), let (items, _) = list(text, open: end + " INCLUDE ".unicodeScalars.count) { include = items }
        return (keys, include)
    }

    /// The column a key is, when it is a plain column (ascending or not): nil for an
    /// expression or a key with its own operator class or collation.
    public static func column(_ key: String) -> String? {
        var key = Substring(key)
        for suffix in [" NULLS FIRST", " NULLS LAST", " DESC", " ASC"] where key.hasSuffix(suffix) { key = key.dropLast(suffix.count) }
        if key.hasPrefix("\"") {
            // One quoted identifier: no lone quote inside.
            let inner = key.dropFirst().dropLast()
            guard key.count >= 2, key.hasSuffix("\""), !inner.replacingOccurrences(of: "\"\"", with: "").contains("\"") else { return nil }
            return PostgresIdentifier.unquoted(String(key))
        }
        let bare = !key.isEmpty && key.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
        return bare ? String(key) : nil
    }

    /// The first `(` outside quotes at or after `from`.
    static func firstOpen(_ text: [Unicode.Scalar], from: Int) -> Int? {
        var i = from, quote: Unicode.Scalar? = nil
        while i < text.count {
            let c = text[i]
            if let q = quote { if c == q { quote = nil } } else if c == "\"" || c == "'" { quote = c } else if c == "(" { return i }
            i += 1
        }
        return nil
    }

    /// The comma-separated items of the parenthesised list opening at `open` (commas
    /// inside nested parentheses or quotes do not split), and the index after its `)`.
    static func list(_ text: [Unicode.Scalar], open: Int) -> ([String], Int)? {
        guard open < text.count, text[open] == "(" else { return nil }
        var items: [String] = [], current = String.UnicodeScalarView(), depth = 0, quote: Unicode.Scalar? = nil
        var i = open + 1
        while i < text.count {
            let c = text[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "(" {
                depth += 1
            } else if c == ")" {
                if depth == 0 {
                    items.append(String(current).trimmingSpaces)
                    return (items, i + 1)
                }
                depth -= 1
            } else if c == ",", depth == 0 {
                items.append(String(current).trimmingSpaces)
                current = String.UnicodeScalarView()
                i += 1
                continue
            }
            current.append(c)
            i += 1
        }
        return nil
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
