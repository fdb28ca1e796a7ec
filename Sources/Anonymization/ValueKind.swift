/// What a column holds, as far as masking cares: read from PostgreSQL's type name.
public enum ValueKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case text, integer, decimal, date, timestamp, uuid, boolean, other

    /// `character varying(255)` → text, `bigint` → integer, `timestamp with time zone` → timestamp, …
    public init(postgresType type: String) {
        let t = type.lowercased()
        if t.hasPrefix("character") || t == "text" || t.hasPrefix("varchar") || t == "citext" || t == "name" { self = .text }
        else if ["smallint", "integer", "bigint", "int2", "int4", "int8"].contains(t) { self = .integer }
        else if t.hasPrefix("numeric") || t == "real" || t == "double precision" || t.hasPrefix("decimal") { self = .decimal }
        else if t == "date" { self = .date }
        else if t.hasPrefix("timestamp") { self = .timestamp }
        else if t == "uuid" { self = .uuid }
        else if t == "boolean" { self = .boolean }
        else { self = .other }
    }

    public var description: String { rawValue }
}
