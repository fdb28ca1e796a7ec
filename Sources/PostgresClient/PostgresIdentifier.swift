/// Checks and quotes names that are built into SQL text (tables, schemas, databases).
///
/// The connection's `quoteIdentifier` uses libpq's `PQescapeIdentifier`, which knows the
/// connection's encoding; this pure version applies the same rule for UTF-8 and is what
/// unit tests and the checks before connecting use.
public enum PostgresIdentifier {
    /// PostgreSQL silently truncates identifiers longer than this (NAMEDATALEN − 1).
    public static let maximumLength = 63

    /// Refuses names PostgreSQL would mangle: empty, holding NUL, or too long.
    public static func validate(_ name: String) throws(PostgresError) {
        if name.isEmpty {
            throw PostgresError(code: .invalidIdentifier, message: "an SQL identifier cannot be empty")
        }
        if name.utf8.contains(0) {
            throw PostgresError(code: .invalidIdentifier, message: "the identifier \(printable(name)) contains a NUL byte")
        }
        if name.utf8.count > maximumLength {
            throw PostgresError(
                code: .invalidIdentifier,
                message: "the identifier \(printable(name)) is \(name.utf8.count) bytes long; PostgreSQL allows \(maximumLength) and would truncate it")
        }
    }

    /// `"name"` with every `"` doubled, after `validate`.
    public static func quoted(_ name: String) throws(PostgresError) -> String {
        try validate(name)
        return "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A schema-qualified name, each part quoted: `"public"."my table"`.
    public static func qualified(schema: String, name: String) throws(PostgresError) -> String {
        try quoted(schema) + "." + quoted(name)
    }

    /// The name as PostgreSQL's own `quote_ident` writes it: bare when it is lower-case
    /// letters, digits and underscores and not a keyword PostgreSQL reserves in any
    /// position, in double quotes otherwise. What `pg_get_indexdef` prints, so a name
    /// written this way compares equal to the server's text of it.
    public static func minimallyQuoted(_ name: String) -> String {
        let plain = name.first.map { $0 == "_" || ("a"..."z").contains($0) } == true
            && name.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
            && !quotedKeywords.contains(name)
        return plain ? name : "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The name a minimally quoted identifier stands for (the text itself when unquoted).
    public static func unquoted(_ text: String) -> String {
        guard text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") else { return text }
        return String(text.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
    }

    /// Every keyword that is not unreserved (reserved, column-name and type-or-function
    /// keywords) in PostgreSQL 15 or 18: `SELECT word FROM pg_get_keywords() WHERE catcode
    /// <> 'U'`. Quoting a word only a newer server reserves is harmless on an older one.
    static let quotedKeywords: Set<String> = [
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "between", "bigint", "binary",
        "bit", "boolean", "both", "case", "cast", "char", "character", "check", "coalesce", "collate", "collation", "column",
        "concurrently", "constraint", "create", "cross", "current_catalog", "current_date", "current_role", "current_schema",
        "current_time", "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc", "distinct", "do", "else",
        "end", "except", "exists", "extract", "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant", "greatest",
        "group", "grouping", "having", "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into",
        "is", "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object", "json_objectagg", "json_query",
        "json_scalar", "json_serialize", "json_table", "json_value", "lateral", "leading", "least", "left", "like", "limit", "localtime",
        "localtimestamp", "merge_action", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null", "nullif",
        "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing", "position", "precision",
        "primary", "real", "references", "returning", "right", "row", "select", "session_user", "setof", "similar", "smallint", "some",
        "substring", "symmetric", "system_user", "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim",
        "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose", "when", "where", "window", "with",
        "xmlattributes", "xmlconcat", "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot",
        "xmlserialize", "xmltable"
    ]

    /// The name as it can be shown in a message: quoted, control characters escaped.
    public static func printable(_ name: String) -> String {
        var out = "'"
        for scalar in name.unicodeScalars.prefix(80) {
            if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        if name.unicodeScalars.count > 80 { out += "…" }
        return out + "'"
    }
}

import Foundation

/// A string literal for the few statements that take no parameters (`COMMENT ON`):
/// single quotes doubled, NUL bytes left out (PostgreSQL text cannot hold one); needs `standard_conforming_strings`
/// (on since PostgreSQL 9.1; a backslash is then an ordinary character).
public enum PostgresLiteral {
    public static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\0", with: "").replacingOccurrences(of: "'", with: "''") + "'"
    }
}
