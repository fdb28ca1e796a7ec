/// The rows a statement returned, as text (libpq's text result format).
public struct PostgresRows: Sendable, RandomAccessCollection {
    public let columns: [String]
    public let rows: [PostgresRow]
    /// The number of rows the statement touched (`INSERT 0 5` → 5), or nil.
    public let affectedRows: Int?
    /// The command tag (`SELECT 3`, `CREATE TABLE`, …).
    public let commandTag: String

    public init(columns: [String], rows: [PostgresRow], affectedRows: Int?, commandTag: String) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.commandTag = commandTag
    }

    public var startIndex: Int { rows.startIndex }
    public var endIndex: Int { rows.endIndex }
    public subscript(position: Int) -> PostgresRow { rows[position] }

    /// The first column of the first row: for `SELECT count(*)` and the like.
    public var scalar: String? { rows.first?.values.first ?? nil }
}

/// One row; values by column position or name, nil for SQL NULL.
public struct PostgresRow: Sendable {
    public let values: [String?]
    let columnIndex: [String: Int]

    public subscript(position: Int) -> String? { values[position] }
    public subscript(column: String) -> String? {
        guard let i = columnIndex[column] else { return nil }
        return values[i]
    }

    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    public func int64(_ column: String) -> Int64? { self[column].flatMap { Int64($0) } }
    public func double(_ column: String) -> Double? { self[column].flatMap { Double($0) } }
    /// PostgreSQL's text form of a boolean is `t` or `f`.
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" || $0 == "true" } }
}

/// A parameter of a parameterised statement, sent in text form; nil is SQL NULL.
public struct PostgresParameter: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public let text: String?

    public init(_ text: String?) { self.text = text }
    public init(_ int: Int) { text = String(int) }
    public init(_ int: Int64) { text = String(int) }
    public init(_ bool: Bool) { text = bool ? "true" : "false" }
    public init(stringLiteral value: String) { text = value }
    public init(integerLiteral value: Int) { text = String(value) }
    public init(nilLiteral: ()) { text = nil }
}
