/// `mask`: keeps the first `keep_first` and last `keep_last` characters and replaces the
/// rest with `char` (`*`): a card or an account number still recognisable to its owner.
public struct Mask: MaskingRule {
    public static let name = "mask"
    public static let summary = "keep the first/last N characters, the rest masked"
    public static let accepts: Set<ValueKind> = [.text]
    let first: Int, last: Int
    let char: Character

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["keep_first", "keep_last", "char"], parameters, path: path)
        first = try Self.int(parameters, "keep_first", default: 0, in: 0...64, path: path)
        last = try Self.int(parameters, "keep_last", default: 4, in: 0...64, path: path)
        let c = parameters["char"] ?? "*"
        guard c.count == 1, let char = c.first else { throw AnonymizationError("\(path).char: '\(c)' must be one character") }
        self.char = char
    }

    public var identity: String { "mask:\(first):\(last):\(char)" }
    public var keepsDistinct: Bool { false }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? {
        let chars = Array(value)
        guard chars.count > first + last else { return String(repeating: char, count: chars.count) }
        return String(chars.prefix(first)) + String(repeating: char, count: chars.count - first - last) + String(chars.suffix(last))
    }
}
