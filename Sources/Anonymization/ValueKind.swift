/// What a column holds, as far as masking cares: read from PostgreSQL's type name.
public enum ValueKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case text, integer, decimal, date, timestamp, uuid, boolean, json, other

    /// `character varying(255)` → text, `bigint` → integer, `timestamp with time zone` → timestamp, …
    /// Matched by the whole name (a type modifier such as `(10,2)` aside): an array
    /// (`numeric[]`) or any other type is `other`, which only rules for any value accept.
    public init(postgresType type: String) {
        var t = type.lowercased()
        if t.hasSuffix("[]") { self = .other; return }
        if let open = t.firstIndex(of: "("), let close = t.firstIndex(of: ")"), open < close {
            t = String(t[..<open]) + String(t[t.index(after: close)...])
        }
        if ["character varying", "character", "text", "varchar", "char", "bpchar", "citext", "name"].contains(t) { self = .text }
        else if ["smallint", "integer", "bigint", "int2", "int4", "int8"].contains(t) { self = .integer }
        else if ["numeric", "decimal", "real", "double precision", "float4", "float8"].contains(t) { self = .decimal }
        else if t == "date" { self = .date }
        else if ["timestamp", "timestamp without time zone", "timestamp with time zone", "timestamptz"].contains(t) { self = .timestamp }
        else if t == "uuid" { self = .uuid }
        else if t == "boolean" { self = .boolean }
        else if t == "json" || t == "jsonb" { self = .json }
        else { self = .other }
    }

    public var description: String { rawValue }
}
