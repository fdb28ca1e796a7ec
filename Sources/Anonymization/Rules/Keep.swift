/// `keep`: the value as it is. Deciding to keep a column is a decision too: strict
/// policies name every column, `keep` included.
public struct Keep: MaskingRule {
    public static let name = "keep"
    public static let summary = "the original value, unchanged"
    public static let accepts = Set(ValueKind.allCases)
    public init() {}
    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only([], parameters, path: path)
    }
    public var identity: String { "keep" }
    public var keepsDistinct: Bool { true }
    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? { value }
}
