/// `generalize`: dates to the first day of their `to: month|year`, numbers to the lower
/// bound of their `width`-wide bucket (ages 37 → 30 with width 10). Not keyed: coarser,
/// not secret.
public struct Generalize: MaskingRule {
    public static let name = "generalize"
    public static let summary = "dates to month or year, numbers to the bottom of their range"
    public static let accepts: Set<ValueKind> = [.integer, .decimal, .date, .timestamp]
    let to: String
    let width: Int

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["to", "width"], parameters, path: path)
        to = parameters["to"] ?? "month"
        guard ["month", "year"].contains(to) else { throw AnonymizationError("\(path).to: '\(to)' must be month or year") }
        width = try Self.int(parameters, "width", default: 10, in: 1...1_000_000_000, path: path)
    }

    public var identity: String { "generalize:\(to):\(width)" }
    public var keepsDistinct: Bool { false }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? {
        switch kind {
        case .integer:
            guard let v = Int64(value) else { return value }
            let w = Int64(width)
            return String((v >= 0 ? v / w : (v - w + 1) / w) * w)
        case .decimal:
            guard let v = Double(value) else { return value }
            return String(Int64((v / Double(width)).rounded(.down)) * Int64(width))
        case .date, .timestamp:
            guard value.count >= 10 else { return value }
            let day = String(value.prefix(10))
            let cut = to == "year" ? String(day.prefix(4)) + "-01-01" : String(day.prefix(7)) + "-01"
            return kind == .date ? cut : cut + " 00:00:00" + (value.hasSuffix("+00") ? "+00" : "")
        default:
            return value
        }
    }
}
