import DatabaseJobs
import Foundation

/// Grandfather-father-son retention: keep the newest `keepLast` backups, the newest of
/// each of the last `daily` days (that have backups), `weekly` ISO weeks, `monthly`
/// months and `yearly` years (UTC), everything younger than `minAge`, and always the
/// newest verified backup. Decided from the manifests' recorded times alone.
import Queue
public struct RetentionPolicy: Codable, Sendable, Equatable {
    public var keepLast: Int
    public var daily: Int
    public var weekly: Int
    public var monthly: Int
    public var yearly: Int
    /// Seconds: backups younger than this are never deleted.
    public var minAgeSeconds: Double
    /// Seconds: data without a manifest, and unfinished uploads, older than this are removed.
    public var graceSeconds: Double

    public static let standard = RetentionPolicy(keepLast: 3, daily: 7, weekly: 4, monthly: 12, yearly: 3,
                                                 minAgeSeconds: 3600, graceSeconds: 86_400)

    public init(keepLast: Int, daily: Int, weekly: Int, monthly: Int, yearly: Int, minAgeSeconds: Double, graceSeconds: Double) {
        self.keepLast = keepLast
        self.daily = daily
        self.weekly = weekly
        self.monthly = monthly
        self.yearly = yearly
        self.minAgeSeconds = minAgeSeconds
        self.graceSeconds = graceSeconds
    }

    /// Refuses a policy with negative counts, or one that would keep nothing.
    public func validate() throws(JobError) {
        let counts = [("keepLast", keepLast), ("daily", daily), ("weekly", weekly), ("monthly", monthly), ("yearly", yearly)]
        if let (name, value) = counts.first(where: { $0.1 < 0 }) {
            throw .permanent("retention \(name) is \(value); counts must be 0 or more")
        }
        if counts.allSatisfy({ $0.1 == 0 }) {
            throw .permanent("the retention policy keeps no backups (keepLast, daily, weekly, monthly and yearly are all 0); set at least one")
        }
        if minAgeSeconds < 0 || !minAgeSeconds.isFinite { throw .permanent("retention minAgeSeconds must be 0 or more") }
        if graceSeconds < 0 || !graceSeconds.isFinite { throw .permanent("retention graceSeconds must be 0 or more") }
    }

    public struct Candidate: Sendable, Equatable {
        public var id: String
        public var time: Date
        public var verified: Bool

        public init(id: String, time: Date, verified: Bool) {
            self.id = id
            self.time = time
            self.verified = verified
        }
    }

    public struct Decision: Sendable, Equatable {
        public var id: String
        public var time: Date
        public var keep: Bool
        /// Every rule that keeps it (`last 3`, `daily 2026-11-20`, `newest verified`…), or
        /// why it goes.
        public var reasons: [String]
    }

    /// One decision per candidate, newest first.
    public func plan(_ candidates: [Candidate], now: Date) -> [Decision] {
        let sorted = candidates.sorted { ($0.time, $0.id) > ($1.time, $1.id) }
        var reasons = Array(repeating: [String](), count: sorted.count)
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        var iso = Calendar(identifier: .iso8601)
        iso.timeZone = TimeZone(identifier: "UTC")!

        for i in sorted.indices.prefix(keepLast) { reasons[i].append("last \(keepLast)") }

        func buckets(_ count: Int, _ label: String, _ key: (Date) -> String) {
            guard count > 0 else { return }
            var seen: Set<String> = []
            for (i, candidate) in sorted.enumerated() {
                let bucket = key(candidate.time)
                guard !seen.contains(bucket) else { continue }
                if seen.count == count { break }
                seen.insert(bucket)
                reasons[i].append("\(label) \(bucket)")
            }
        }
        buckets(daily, "daily") { d in
            let c = utc.dateComponents([.year, .month, .day], from: d)
            return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
        }
        buckets(weekly, "weekly") { d in
            let c = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: d)
            return String(format: "%04d-W%02d", c.yearForWeekOfYear!, c.weekOfYear!)
        }
        buckets(monthly, "monthly") { d in
            let c = utc.dateComponents([.year, .month], from: d)
            return String(format: "%04d-%02d", c.year!, c.month!)
        }
        buckets(yearly, "yearly") { d in String(format: "%04d", utc.component(.year, from: d)) }

        for (i, candidate) in sorted.enumerated() where now.timeIntervalSince(candidate.time) < minAgeSeconds {
            reasons[i].append("younger than min age \(Self.describe(seconds: minAgeSeconds))")
        }
        if let newestVerified = sorted.firstIndex(where: \.verified) {
            reasons[newestVerified].append("newest verified")
        }
        return sorted.enumerated().map { i, candidate in
            let keep = !reasons[i].isEmpty
            return Decision(id: candidate.id, time: candidate.time, keep: keep, reasons: keep ? reasons[i] : ["kept by no rule"])
        }
    }

    /// `90s`, `15m`, `2h`, `3d`.
    public static func describe(seconds: Double) -> String {
        if seconds >= 86_400, seconds.truncatingRemainder(dividingBy: 86_400) == 0 { return "\(Int(seconds / 86_400))d" }
        if seconds >= 3600, seconds.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(seconds / 3600))h" }
        if seconds >= 60, seconds.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(seconds / 60))m" }
        return "\(Int(seconds))s"
    }
}
