import DatabaseJobs
import Foundation

/// One stats run's figures, kept (bounded) so later runs can show trends.
public struct StatsSample: Sendable, Equatable, Codable {
    public static let currentFormat = "dbq.stats.v1"
    public struct Table: Sendable, Equatable, Codable {
        public var name: String
        public var rows: Int64
        public var deadRows: Int64
        public var totalBytes: Int64
        public var tableBytes: Int64
        public var toastBytes: Int64
        public var indexBytes: Int64
        public var seqScans: Int64
        public var indexScans: Int64
    }
    public struct Index: Sendable, Equatable, Codable {
        public var name: String
        public var table: String
        public var bytes: Int64
        public var scans: Int64
    }
    public struct Statement: Sendable, Equatable, Codable {
        public var id: String
        public var query: String
        public var calls: Int64
        public var totalMs: Double
        public var meanMs: Double
        public var rows: Int64
        public var blocksHit: Int64
        public var blocksRead: Int64
    }

    public var format: String
    public var database: String
    public var takenAt: Date
    public var databaseBytes: Int64
    public var tables: [Table]
    public var indexes: [Index]
    public var statements: [Statement]
    /// Why statements are missing (pg_stat_statements not there), if they are.
    public var note: String?

    /// At most this many tables, indexes and statements in a sample (the largest, the costliest).
    public static let limit = 100
}

/// Growth and slowdowns between two samples. Pure.
public enum StatsTrends {
    public struct Growth: Sendable, Equatable, Codable {
        public var table: String
        public var bytesBefore: Int64
        public var bytesAfter: Int64
        public var rowsBefore: Int64
        public var rowsAfter: Int64
        public var bytesPerDay: Double
    }
    public struct Slowdown: Sendable, Equatable, Codable {
        public var id: String
        public var query: String
        public var meanBefore: Double
        /// Mean time of the calls made between the samples.
        public var meanBetween: Double
        public var calls: Int64
        public var factor: Double
    }
    public struct Report: Sendable, Equatable, Codable {
        public var from: Date
        public var to: Date
        public var samples: Int
        public var growth: [Growth]
        public var slower: [Slowdown]
    }

    /// Compares the first and last sample: tables by growth, statements whose calls between
    /// the samples took at least `factor` times their mean before.
    public static func compare(_ samples: [StatsSample], factor: Double = 2) -> Report? {
        let sorted = samples.sorted { $0.takenAt < $1.takenAt }
        guard let first = sorted.first, let last = sorted.last, sorted.count >= 2 else { return nil }
        let days = max(last.takenAt.timeIntervalSince(first.takenAt) / 86_400, 1.0 / 86_400)
        let before = Dictionary(first.tables.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let growth = last.tables.compactMap { t -> Growth? in
            let b = before[t.name]
            return Growth(table: t.name, bytesBefore: b?.totalBytes ?? 0, bytesAfter: t.totalBytes, rowsBefore: b?.rows ?? 0, rowsAfter: t.rows,
                          bytesPerDay: Double(t.totalBytes - (b?.totalBytes ?? 0)) / days)
        }.sorted { a, b in
            let (da, db) = (a.bytesAfter - a.bytesBefore, b.bytesAfter - b.bytesBefore)
            return da != db ? da > db : a.table < b.table
        }
        let earlier = Dictionary(first.statements.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let slower = last.statements.compactMap { s -> Slowdown? in
            guard let e = earlier[s.id], s.calls > e.calls, e.meanMs > 0 else { return nil }
            let between = (s.totalMs - e.totalMs) / Double(s.calls - e.calls)
            guard between >= factor * e.meanMs else { return nil }
            return Slowdown(id: s.id, query: s.query, meanBefore: e.meanMs, meanBetween: between, calls: s.calls - e.calls, factor: between / e.meanMs)
        }.sorted { $0.factor > $1.factor }
        return Report(from: first.takenAt, to: last.takenAt, samples: sorted.count, growth: growth, slower: slower)
    }
}
