import Foundation

/// Values to plan a statement's parameters at, when a generic plan (which knows no
/// parameter) hides what an index would save: a range over a parameter is costed at a
/// third of the table, so `created_at > now() - $1` never looks selective. Each level
/// assumes a more selective filter less (about 0.1 %, 1 %, 10 % of the rows), taken from
/// the column's histogram when the parameter is compared with it directly, or from a
/// list of typical values when it sits inside an expression (an interval). Pure.
public enum RepresentativeValues {
    /// A column's statistics from `pg_stats`, as text.
    public struct ColumnStats: Sendable, Equatable {
        public var histogram: [String]
        public var mostCommon: [String]
        public init(histogram: [String] = [], mostCommon: [String] = []) {
            self.histogram = histogram
            self.mostCommon = mostCommon
        }
    }

    /// The share of rows each level aims a range filter at.
    public static let selectivities: [Double] = [0.001, 0.01, 0.1]
    /// An interval inside an expression (`now() - $1`), per level.
    public static let intervals = ["1 minute", "1 hour", "1 day"]

    /// One assignment per level: a literal for every parameter `1...count`; empty when a
    /// parameter has no role, no statistics to draw from, or a type with no typical values,
    /// or when no parameter is a range (the generic plan then says enough).
    public static func assignments(count: Int, roles: [Int: WorkloadCandidates.ParameterRole], types: [String],
                                   stats: [String: ColumnStats]) -> [[String]] {
        guard count > 0, roles.values.contains(where: { $0.op != "=" }) else { return [] }
        var levels: [[String]] = Array(repeating: [], count: selectivities.count)
        for n in 1...count {
            guard let role = roles[n] else { return [] }
            let type = n <= types.count ? types[n - 1] : ""
            let column = stats["\(role.table).\(role.column)"] ?? ColumnStats()
            for (level, selectivity) in selectivities.enumerated() {
                guard let value = value(role, type: type, column: column, selectivity: selectivity, level: level) else { return [] }
                levels[level].append(literal(value))
            }
        }
        return levels
    }

    static func value(_ role: WorkloadCandidates.ParameterRole, type: String, column: ColumnStats, selectivity: Double, level: Int) -> String? {
        if !role.direct {
            return type == "interval" && role.op != "=" ? intervals[level] : nil
        }
        let bounds = column.histogram
        if role.op == "=" { return column.mostCommon.first ?? (bounds.isEmpty ? nil : bounds[bounds.count / 2]) }
        guard bounds.count >= 2 else { return nil }
        let last = Double(bounds.count - 1)
        // Rows above the value for > and >=, below it for < and <=.
        let position = role.op.hasPrefix(">") ? (1 - selectivity) * last : selectivity * last
        return bounds[min(bounds.count - 1, max(0, Int(position.rounded())))]
    }

    static func literal(_ value: String) -> String { "'" + value.replacingOccurrences(of: "'", with: "''") + "'" }

    /// The elements of a one-dimensional array in PostgreSQL's text form (`{a,"b c",NULL}`);
    /// NULLs left out.
    public static func elements(_ text: String) -> [String] {
        var out: [String] = []
        var current = "", quoted = false, inQuotes = false, escaped = false
        for c in text.dropFirst().dropLast() {
            if escaped { current.append(c); escaped = false; continue }
            if inQuotes {
                if c == "\\" { escaped = true } else if c == "\"" { inQuotes = false } else { current.append(c) }
                continue
            }
            if c == "\"" { inQuotes = true; quoted = true; continue }
            if c == "," {
                if quoted || current != "NULL" { out.append(current) }
                current = ""; quoted = false
                continue
            }
            current.append(c)
        }
        if !text.hasPrefix("{}") && (quoted || (!current.isEmpty && current != "NULL")) { out.append(current) }
        return out
    }

    /// `pg_stat_statements` writes a typed literal's constant as `interval $1`, which does
    /// not parse; `$1::interval` does.
    public static func preparable(_ query: String) -> String {
        let types = #"interval|date|timestamptz|timestamp(?:\s+with(?:out)?\s+time\s+zone)?|timetz|time(?:\s+with(?:out)?\s+time\s+zone)?|numeric|decimal|integer|int[248]?|bigint|smallint|real|double\s+precision|float[48]|text|varchar|character\s+varying|boolean|bool|uuid|jsonb|json|inet|cidr|bytea"#
        guard let regex = try? NSRegularExpression(pattern: #"\b("# + types + #")\s+\$([0-9]+)\b"#, options: [.caseInsensitive]) else { return query }
        return regex.stringByReplacingMatches(in: query, range: NSRange(query.startIndex..., in: query), withTemplate: "\\$$2::$1")
    }
}
