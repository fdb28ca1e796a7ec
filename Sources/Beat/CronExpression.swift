import Foundation

/// A cron expression: five fields (minute hour day-of-month month day-of-week), or six
/// with a leading seconds field, or a macro (`@yearly`, `@monthly`, `@weekly`, `@daily`,
/// `@hourly`). Lists, ranges, steps and month/day names as Vixie cron reads them; when
/// both day-of-month and day-of-week are restricted, a day matching either fires.
///
/// Fire times are computed in an IANA time zone, with daylight saving time handled so
/// that every slot fires exactly once:
/// - a slot in a skipped hour (spring forward) fires at the first instant after the gap;
/// - a slot in a repeated hour (fall back) fires once, at its first occurrence.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let source: String
    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 = Sunday … 6 = Saturday.
    let daysOfWeek: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool

    public var description: String { source }

    /// Parses `source`; every rejection names the field and the bad part. An expression
    /// that can never fire (`0 0 31 2 *`) is refused too.
    public init(_ source: String) throws(CronError) {
        let trimmed = source.trimmingCharacters(in: .whitespaces)
        self.source = trimmed
        var text = trimmed
        if trimmed.hasPrefix("@") {
            switch trimmed.lowercased() {
            case "@yearly", "@annually": text = "0 0 1 1 *"
            case "@monthly": text = "0 0 1 * *"
            case "@weekly": text = "0 0 * * 0"
            case "@daily", "@midnight": text = "0 0 * * *"
            case "@hourly": text = "0 * * * *"
            default:
                throw CronError(source: trimmed, message: "unknown macro '\(trimmed)'; use @yearly, @monthly, @weekly, @daily or @hourly")
            }
        }
        var fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw CronError(source: trimmed, message: "has \(fields.count) fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.parse(fields[0], .second, source: trimmed)
        minutes = try Self.parse(fields[1], .minute, source: trimmed)
        hours = try Self.parse(fields[2], .hour, source: trimmed)
        daysOfMonth = try Self.parse(fields[3], .dayOfMonth, source: trimmed)
        months = try Self.parse(fields[4], .month, source: trimmed)
        daysOfWeek = Set(try Self.parse(fields[5], .dayOfWeek, source: trimmed).map { $0 % 7 })
        domRestricted = !fields[3].hasPrefix("*")
        dowRestricted = !fields[5].hasPrefix("*")
        if !canEverFire {
            throw CronError(source: trimmed, message: "can never fire: no month has the days \(daysOfMonth.sorted().map(String.init).joined(separator: ",")) among months \(months.sorted().map(String.init).joined(separator: ","))")
        }
    }

    /// The first fire time strictly after `instant`, in `zone`; nil if there is none
    /// within 30 years.
    /// Gregorian in UTC: wall times are computed as if they were UTC instants.
    private static let wallCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    public func next(after instant: Date, in zone: TimeZone) -> Date? {
        let calendar = Self.wallCalendar
        // Start from the local wall time of the next whole second.
        let startInstant = Date(timeIntervalSince1970: (instant.timeIntervalSince1970 + 1).rounded(.down))
        let offset = zone.secondsFromGMT(for: startInstant)
        let local = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                            from: startInstant.addingTimeInterval(TimeInterval(offset)))
        var day = calendar.date(from: DateComponents(year: local.year, month: local.month, day: local.day))!
        // Local wall times are handled as if they were UTC instants. Away from a daylight
        // saving transition a wall time is one fixed offset from its instant; near one,
        // `resolve` decides, and slots up to two hours before the start's wall time are
        // looked at (no transition moves clocks further).
        let transition = zone.nextDaylightSavingTimeTransition(after: startInstant.addingTimeInterval(-2 * 86_400))
        let fixedUntil = transition?.addingTimeInterval(-86_400) ?? .distantFuture
        let nearStart = fixedUntil <= startInstant.addingTimeInterval(86_400)
        let earliestWall = startInstant.addingTimeInterval(TimeInterval(offset - (nearStart ? 7200 : 0)))
        let sortedHours = hours.sorted(), sortedMinutes = minutes.sorted(), sortedSeconds = seconds.sorted()
        for _ in 0..<(366 * 30) {
            let parts = calendar.dateComponents([.year, .month, .day, .weekday], from: day)
            let (month, dom, dow) = (parts.month!, parts.day!, parts.weekday! - 1)
            if months.contains(month) && matchesDay(dayOfMonth: dom, dayOfWeek: dow) {
                for h in sortedHours where day.addingTimeInterval(TimeInterval(h * 3600 + 3599)) >= earliestWall {
                    for m in sortedMinutes where day.addingTimeInterval(TimeInterval(h * 3600 + m * 60 + 59)) >= earliestWall {
                        for s in sortedSeconds {
                            let wall = day.addingTimeInterval(TimeInterval(h * 3600 + m * 60 + s))
                            if wall < earliestWall { continue }
                            let fixed = wall.addingTimeInterval(TimeInterval(-offset))
                            let fire = fixed < fixedUntil ? fixed : Self.resolve(wall: wall, zone: zone)
                            if fire > instant { return fire }
                        }
                    }
                }
            }
            day = calendar.date(byAdding: .day, value: 1, to: day)!
        }
        return nil
    }

    /// The next `count` fire times after `instant`.
    public func upcoming(after instant: Date, in zone: TimeZone, count: Int) -> [Date] {
        var out: [Date] = []
        var cursor = instant
        while out.count < count, let next = next(after: cursor, in: zone) {
            out.append(next)
            cursor = next
        }
        return out
    }

    /// The fire times in `(from, through]`, oldest first, at most `limit`.
    public func fireTimes(after from: Date, through: Date, in zone: TimeZone, limit: Int) -> [Date] {
        var out: [Date] = []
        var cursor = from
        while out.count < limit, let next = next(after: cursor, in: zone), next <= through {
            out.append(next)
            cursor = next
        }
        return out
    }

    func matchesDay(dayOfMonth: Int, dayOfWeek: Int) -> Bool {
        let domOK = daysOfMonth.contains(dayOfMonth)
        let dowOK = daysOfWeek.contains(dayOfWeek)
        if domRestricted && dowRestricted { return domOK || dowOK }
        return domOK && dowOK
    }

    /// The instant a local wall time (given as if it were UTC) happens in `zone`: the
    /// earliest one if it happens twice, the end of the gap if it does not happen.
    static func resolve(wall: Date, zone: TimeZone) -> Date {
        let offsets = Set([-86_400, 0, 86_400].map { zone.secondsFromGMT(for: wall.addingTimeInterval(TimeInterval($0))) })
        let valid = offsets.map { wall.addingTimeInterval(TimeInterval(-$0)) }
            .filter { candidate in
                TimeInterval(zone.secondsFromGMT(for: candidate)) == wall.timeIntervalSince(candidate)
            }
        if let earliest = valid.min() { return earliest }
        // In a gap: the first instant after it is the transition itself.
        let largest = offsets.max() ?? 0
        let searchFrom = wall.addingTimeInterval(TimeInterval(-largest - 1))
        return zone.nextDaylightSavingTimeTransition(after: searchFrom) ?? wall.addingTimeInterval(TimeInterval(-largest))
    }

    /// Whether some month in the set has some day of the set. A restricted day-of-week
    /// always can (every month has every weekday).
    var canEverFire: Bool {
        if dowRestricted || !domRestricted { return true }
        let longest = [1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31]
        return months.contains { month in daysOfMonth.contains { $0 <= longest[month]! } }
    }

    // MARK: - Parsing

    enum Field: String {
        case second = "seconds", minute, hour, dayOfMonth = "day-of-month", month, dayOfWeek = "day-of-week"

        var range: ClosedRange<Int> {
            switch self {
            case .second, .minute: 0...59
            case .hour: 0...23
            case .dayOfMonth: 1...31
            case .month: 1...12
            case .dayOfWeek: 0...7
            }
        }

        var names: [String: Int] {
            switch self {
            case .month: ["JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12]
            case .dayOfWeek: ["SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6]
            default: [:]
            }
        }
    }

    static func parse(_ text: String, _ field: Field, source: String) throws(CronError) -> Set<Int> {
        func bad(_ message: String) -> CronError {
            CronError(source: source, message: "\(field.rawValue) field '\(text)': \(message)")
        }
        func value(_ token: Substring) throws(CronError) -> Int {
            if let n = Int(token) {
                guard field.range.contains(n) else {
                    throw bad("\(n) is outside \(field.range.lowerBound)–\(field.range.upperBound)")
                }
                return n
            }
            if let n = field.names[token.uppercased()] { return n }
            if token.uppercased().contains("L") || token.contains("#") || token.uppercased().contains("W") {
                throw bad("'\(token)' (L, W and # forms) is not supported; use plain numbers, ranges, lists and steps")
            }
            throw bad("'\(token)' is not a number\(field.names.isEmpty ? "" : " or a name (\(field.names.sorted { $0.value < $1.value }.map(\.key).joined(separator: " ")))")")
        }
        var result = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw bad("has an empty list item") }
            let stepParts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard stepParts.count <= 2 else { throw bad("'\(item)' has more than one '/'") }
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s >= 1 else { throw bad("step '\(stepParts[1])' is not a positive number") }
                step = s
            }
            let base = stepParts[0]
            var low: Int, high: Int
            if base == "*" {
                low = field.range.lowerBound
                high = field == .dayOfWeek ? 6 : field.range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw bad("range '\(base)' runs backwards") }
            } else {
                low = try value(base)
                // `5/15` means from 5 to the end in steps of 15.
                high = stepParts.count == 2 ? (field == .dayOfWeek ? 6 : field.range.upperBound) : low
            }
            for v in stride(from: low, through: high, by: step) { result.insert(v) }
        }
        return result
    }
}

/// A cron expression that does not parse or cannot fire.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public var source: String
    public var message: String
    public var description: String { "cron '\(source)': \(message)" }
}
