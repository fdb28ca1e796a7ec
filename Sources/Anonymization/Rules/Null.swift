/// `null`: every value becomes NULL (refused on a NOT NULL column). NULLs never collide
/// in a unique index, so it is safe on unique columns.
public struct Null: MaskingRule {
    public static let name = "null"
    public static let summary = "NULL instead of any value"
    public static let accepts = Set(ValueKind.allCases)
    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only([], parameters, path: path)
    }
    public var identity: String { "null" }
    public var keepsDistinct: Bool { true }
    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? { nil }
}
