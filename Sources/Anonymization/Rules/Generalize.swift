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

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        if SpecialValue.isSpecial(value, kind: kind) { return value }
        switch kind {
        case .integer:
            guard let v = Int64(value) else { throw .unreadable(Self.name, as: "an integer") }
            // The bucket's floor, without overflow at the ends of 64 bits.
            let w = Int64(width)
            let floor = v / w * w
            guard floor > v else { return String(floor) }
            let (below, overflow) = floor.subtractingReportingOverflow(w)
            return String(overflow ? floor : below)
        case .decimal:
            guard let v = Double(value), v.isFinite else { throw .unreadable(Self.name, as: "a number") }
            // Past 64 bits the bucket is the nearest end of them.
            let bucket = (v / Double(width)).rounded(.down) * Double(width)
            return String(Int64(max(min(bucket, 9e18), -9e18)))
        case .date, .timestamp:
            guard value.count >= 10, DayMath.parse(String(value.prefix(10))) != nil else {
                throw .unreadable(Self.name, as: "an ISO date (is the session's DateStyle ISO?)")
            }
            let day = String(value.prefix(10))
            let cut = to == "year" ? String(day.prefix(4)) + "-01-01" : String(day.prefix(7)) + "-01"
            return kind == .date ? cut : cut + " 00:00:00" + (value.hasSuffix("+00") ? "+00" : "")
        default:
            throw AnonymizationError("\(Self.name) does not apply to a column of kind \(kind)")
        }
    }
}
