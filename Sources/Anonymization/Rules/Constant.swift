/// `constant`: one value for every row (`value:`).
public struct Constant: MaskingRule {
    public static let name = "constant"
    public static let summary = "the same value in every row"
    public static let accepts = Set(ValueKind.allCases)
    let value: String
    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["value"], parameters, path: path)
        guard let value = parameters["value"] else { throw AnonymizationError("\(path): constant needs value: (the value every row gets)") }
        self.value = value
    }
    public var identity: String { "constant:\(value)" }
    public var keepsDistinct: Bool { false }
    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? { self.value }
}
