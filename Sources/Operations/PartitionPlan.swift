import DatabaseJobs
import Foundation

/// A range-partitioned table dbq keeps: partitions made ahead of time, old ones detached
/// or dropped. Declared in dbq.yaml under `partitions:`.
public struct PartitionSpec: Sendable, Equatable, Codable {
    public enum Interval: String, Sendable, Codable, CaseIterable { case hourly, daily, weekly, monthly, yearly }
    public enum RetentionAction: String, Sendable, Codable { case detach, drop }

    /// `schema.table` (or a name in `public`).
    public var table: String
    public var interval: Interval
    /// Partitions kept ahead of now (default 4).
    public var premake: Int
    /// Partitions wholly older than this many seconds are detached or dropped (nil: kept).
    public var retentionSeconds: Double?
    public var retentionAction: RetentionAction

    public init(table: String, interval: Interval, premake: Int = 4, retentionSeconds: Double? = nil, retentionAction: RetentionAction = .detach) {
        self.table = table
        self.interval = interval
        self.premake = premake
        self.retentionSeconds = retentionSeconds
        self.retentionAction = retentionAction
    }
}

/// What partition upkeep does to one table, decided from its partitions' bounds and the
/// default partition's rows. Pure (UTC).
public enum PartitionPlan {
    public struct Existing: Sendable, Equatable {
        public var name: String
        public var from: Date
        public var to: Date
        /// Its schema when it is not the parent's.
        public var schema: String?
        /// A `DETACH … CONCURRENTLY` that did not finish left it pending.
        public var detachPending: Bool
        public init(name: String, from: Date, to: Date, schema: String? = nil, detachPending: Bool = false) {
            self.name = name
            self.from = from
            self.to = to
            self.schema = schema
            self.detachPending = detachPending
        }
    }

    public struct Plan: Sendable, Equatable {
        public var create: [(name: String, from: Date, to: Date)]
        public var retire: [Existing]
        /// What was not done, and why (rows in the default partition that a child's range covers).
        public var refused: [String]
        /// About the default partition (rows far outside the expected range).
        public var notes: [String]

        public static func == (a: Plan, b: Plan) -> Bool {
            a.create.map { "\($0.name) \($0.from) \($0.to)" } == b.create.map { "\($0.name) \($0.from) \($0.to)" }
                && a.retire == b.retire && a.refused == b.refused && a.notes == b.notes
        }
    }

    static var utc: Calendar {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }

    /// The start of the interval holding `date`.
    public static func floor(_ date: Date, _ interval: PartitionSpec.Interval) -> Date {
        let c = utc
        switch interval {
        case .hourly: return c.date(from: c.dateComponents([.year, .month, .day, .hour], from: date))!
        case .daily: return c.startOfDay(for: date)
        case .weekly:
            // ISO weeks start on Monday.
            let day = c.startOfDay(for: date)
            let weekday = c.component(.weekday, from: day)   // 1 = Sunday
            return c.date(byAdding: .day, value: -((weekday + 5) % 7), to: day)!
        case .monthly: return c.date(from: c.dateComponents([.year, .month], from: date))!
        case .yearly: return c.date(from: c.dateComponents([.year], from: date))!
        }
    }

    public static func next(_ date: Date, _ interval: PartitionSpec.Interval) -> Date {
        let c = utc
        switch interval {
        case .hourly: return c.date(byAdding: .hour, value: 1, to: date)!
        case .daily: return c.date(byAdding: .day, value: 1, to: date)!
        case .weekly: return c.date(byAdding: .day, value: 7, to: date)!
        case .monthly: return c.date(byAdding: .month, value: 1, to: date)!
        case .yearly: return c.date(byAdding: .year, value: 1, to: date)!
        }
    }

    /// `<table>_p20260301` (`_p2026030114` hourly).
    public static func childName(_ table: String, from: Date, _ interval: PartitionSpec.Interval) -> String {
        let c = utc.dateComponents([.year, .month, .day, .hour], from: from)
        var suffix = String(format: "%04d%02d%02d", c.year!, c.month!, c.day!)
        if interval == .hourly { suffix += String(format: "%02d", c.hour!) }
        var name = "\(table)_p\(suffix)"
        while name.utf8.count > 63 { name.removeFirst() }
        return name
    }

    /// Makes the partitions from the current interval to `premake` intervals ahead (never
    /// driven by the data: a far-future row makes no partition), retires those wholly
    /// older than the retention, and refuses a child whose range holds rows of the
    /// default partition (creating it would fail; they must be moved first).
    public static func plan(_ spec: PartitionSpec, table: String, existing: [Existing], defaultRows: [(key: Date, count: Int64)], now: Date) -> Plan {
        var create: [(String, Date, Date)] = []
        var refused: [String] = []
        var from = floor(now, spec.interval)
        for _ in 0...max(0, spec.premake) {
            let to = next(from, spec.interval)
            let overlaps = existing.contains { $0.from < to && from < $0.to }
            if !overlaps {
                let blocking = defaultRows.filter { $0.key >= from && $0.key < to }.reduce(0) { $0 + $1.count }
                if blocking > 0 {
                    refused.append("\(childName(table, from: from, spec.interval)) [\(iso(from)), \(iso(to))) not created: the default partition holds \(blocking) row(s) in that range; move them out (or into the new partition by hand) first")
                } else {
                    create.append((childName(table, from: from, spec.interval), from, to))
                }
            }
            from = to
        }
        let retire = spec.retentionSeconds.map { seconds in
            existing.filter { $0.to <= now.addingTimeInterval(-seconds) }.sorted { $0.from < $1.from }
        } ?? []
        var notes: [String] = []
        let horizon = from
        let far = defaultRows.filter { $0.key >= horizon }
        if let latest = far.map(\.key).max() {
            notes.append("the default partition holds \(far.reduce(0) { $0 + $1.count }) row(s) beyond the premade range (up to \(iso(latest))): far outside the expected range, so no partition is made for them (check the data)")
        }
        let old = defaultRows.filter { $0.key < floor(now, spec.interval) }.reduce(0) { $0 + $1.count }
        if old > 0 { notes.append("the default partition holds \(old) row(s) before the current interval") }
        return Plan(create: create, retire: retire, refused: refused, notes: notes)
    }

    static func iso(_ date: Date) -> String { date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!)) }
}
