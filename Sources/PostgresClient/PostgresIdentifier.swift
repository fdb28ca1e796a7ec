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
