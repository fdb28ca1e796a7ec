import Foundation

/// `noise`: numbers moved by up to ±`percent` %, dates and timestamps by up to ±`days`
/// days; the offset is keyed on the value, so a value always moves the same way.
public struct Noise: MaskingRule {
    public static let name = "noise"
    public static let summary = "numbers ± percent, dates ± days, the same offset for the same value"
    public static let accepts: Set<ValueKind> = [.integer, .decimal, .date, .timestamp]
    let percent: Int, days: Int

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["percent", "days"], parameters, path: path)
        percent = try Self.int(parameters, "percent", default: 10, in: 1...100, path: path)
        days = try Self.int(parameters, "days", default: 30, in: 1...3650, path: path)
    }

    public var identity: String { "noise:\(percent):\(days)" }
    public var keepsDistinct: Bool { false }

    /// A uniform fraction in [-1, 1] from the keyed hash.
    func unit(_ value: String, key: AnonymizationKey) -> Double {
        Double(word(key.mac(domain: identity, value)) >> 11) / Double(1 << 53) * 2 - 1
    }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        // Infinities and NaN (valid numerics, dates and timestamps) say nothing of a person.
        if SpecialValue.isSpecial(value, kind: kind) { return value }
        let u = unit(value, key: key)
        switch kind {
        case .integer:
            guard let v = Int64(value) else { throw .unreadable(Self.name, as: "an integer") }
            return String(Self.shifted(v, by: (Double(v) * Double(percent) / 100 * u).rounded()))
        case .decimal:
            guard let v = Double(value), v.isFinite else { throw .unreadable(Self.name, as: "a number") }
            let scale = value.split(separator: ".").dropFirst().first?.count ?? 0
            return String(format: "%.\(scale)f", v * (1 + Double(percent) / 100 * u))
        case .date, .timestamp:
            // The date part shifts by whole days, never by none (a date left where it was is
            // the original); a time of day, if any, is kept.
            guard value.count >= 10, let date = DayMath.parse(String(value.prefix(10))) else {
                throw .unreadable(Self.name, as: "an ISO date (is the session's DateStyle ISO?)")
            }
            var offset = Int((Double(days) * u).rounded())
            if offset == 0 { offset = u < 0 ? -1 : 1 }
            let shifted = DayMath.format(date + offset)
            return shifted + value.dropFirst(10)
        default:
            throw AnonymizationError("\(Self.name) does not apply to a column of kind \(kind)")
        }
    }
}

/// The values of numeric, date and timestamp types that name no point: `NaN`,
/// `Infinity`, `-Infinity`, `infinity`, `-infinity`. Masking rules keep them.
enum SpecialValue {
    static func isSpecial(_ value: String, kind: ValueKind) -> Bool {
        switch kind {
        case .decimal: return value == "NaN" || value == "Infinity" || value == "-Infinity"
        case .date, .timestamp: return value == "infinity" || value == "-infinity"
        default: return false
        }
    }
}

extension Noise {
    /// `v` moved by `offset`, never past the band it started in: a value of a 32-bit
    /// column stays a 32-bit value (an `integer` column must take it back), and nothing
    /// overflows at the ends of 64 bits.
    static func shifted(_ v: Int64, by offset: Double) -> Int64 {
        let band: ClosedRange<Double> = Int64(Int32.min)...Int64(Int32.max) ~= v
            ? Double(Int32.min)...Double(Int32.max) : -9_223_372_036_854_774_784...9_223_372_036_854_774_784
        let target = min(max(Double(v) + offset, band.lowerBound), band.upperBound)
        // Exact for the small offsets of small values; clamped in Double only near the ends.
        if abs(offset) < 9e15, case let (sum, overflow) = v.addingReportingOverflow(Int64(offset)), !overflow,
           Double(sum) >= band.lowerBound, Double(sum) <= band.upperBound {
            return sum
        }
        return Int64(target)
    }
}

/// Days since 1970-01-01 for ISO dates, without a calendar object per row.
enum DayMath {
    static func parse(_ text: String) -> Int? {
        let p = text.split(separator: "-")
        guard p.count == 3, let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]), (1...12).contains(m), (1...31).contains(d) else { return nil }
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func format(_ days: Int) -> String {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return String(format: "%04d-%02d-%02d", y, m, d)
    }
}
