import Foundation

/// `shuffle`: the column's values permuted across the exported rows. The database does
/// it (a keyed order, so one key gives one permutation): every value of the column
/// survives, in another row, so its distribution and uniqueness do too. The permutation
/// is one cycle through all rows (a derangement), so no row keeps its own value; a row
/// may still get an equal value another row had. A table or subset of one row has nothing
/// to swap with: the export stops. References cannot follow a shuffle, so a shuffled
/// column may not be one side of a reference.
public struct Shuffle: MaskingRule {
    public static let name = "shuffle"
    public static let summary = "the column's values permuted across rows (distribution kept, no row keeps its own)"
    public static let accepts = Set(ValueKind.allCases)
    /// The text of the error the export's query raises for a one-row shuffle.
    public static let oneRow = "dbq: shuffle needs two rows or more, not"
    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only([], parameters, path: path)
    }
    public var identity: String { "shuffle" }
    public var keepsDistinct: Bool { true }
    public var computedByServer: Bool { true }
    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? { value }

    /// The salt the database orders values by: derived from the key and the column, it
    /// names neither (a keyed hash), so the key never reaches the server.
    public static func salt(key: AnonymizationKey, column: String) -> String {
        String(hex(key.mac(domain: "dbq:shuffle", column)).prefix(32))
    }
}

/// `sql`: a server-side expression for the odd case (`left(zip, 2) || '000'`), evaluated
/// in the export's query over the row's original columns and cast to the column's type.
/// It can promise nothing about distinct values, so it is refused on a unique column and
/// on either side of a reference.
public struct SQLExpression: MaskingRule {
    public static let name = "sql"
    public static let summary = "a server-side SQL expression over the row's columns, cast to the column's type"
    public static let accepts = Set(ValueKind.allCases)
    /// The text of the error the export's query raises for a one-row shuffle.
    public static let oneRow = "dbq: shuffle needs two rows or more, not"
    public let expression: String

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["expression"], parameters, path: path)
        guard let expression = parameters["expression"]?.trimmingCharacters(in: .whitespaces), !expression.isEmpty else {
            throw AnonymizationError("\(path): sql needs expression: (e.g. {rule: sql, expression: \"left(zip, 2) || '000'\"})")
        }
        // One expression, not statements: the export runs it inside its own query.
        guard !expression.contains(";"), !expression.contains("--"), !expression.contains("/*") else {
            throw AnonymizationError("\(path).expression: one SQL expression without ';' or comments")
        }
        self.expression = expression
    }
    public var identity: String { "sql:\(expression)" }
    public var keepsDistinct: Bool { false }
    public var computedByServer: Bool { true }
    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? { value }
}
