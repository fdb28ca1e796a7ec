import CoreMetrics
import Foundation

/// A database's state as numbers, from the health job's facts: what the health job (hourly
/// in the shipped schedule) exports as gauges, for alert rules and the dashboard. Numbers
/// only: no query text or session detail leaves through metrics.
public struct HealthFigures: Codable, Sendable, Equatable {
    public var maxConnections: Int
    public var connectionsByState: [String: Int]
    public var longestTransactionSeconds: Double
    public var longestQuerySeconds: Double
    public var idleInTransaction: Int
    public var replicationLagSeconds: [String: Double]
    /// Transaction ids left before the oldest database reaches wraparound (2^31 − 1 −
    /// age(datfrozenxid)); PostgreSQL stops taking writes some millions before zero.
    public var transactionIDsLeft: Int64
    /// The fullest sequence's last value over its maximum (0 when there is none).
    public var fullestSequenceRatio: Double
    public var fullestSequence: String?
    public var cacheHitRatio: Double?
    public var databaseBytes: Int64
    public var archiveSecondsSinceArchived: Double?
    public var archiveWaitingSegments: Int?
    public var archiveFailing: Bool?

    public init(_ facts: HealthFacts) {
        maxConnections = facts.maxConnections
        connectionsByState = facts.connectionsByState
        longestTransactionSeconds = facts.longestTransaction?.seconds ?? 0
        longestQuerySeconds = facts.longestQuery?.seconds ?? 0
        idleInTransaction = facts.idleInTransaction.count
        replicationLagSeconds = Dictionary(facts.replicas.compactMap { r in r.lagSeconds.map { (r.name, $0) } }, uniquingKeysWith: max)
        transactionIDsLeft = Int64(Int32.max) - facts.xidAge
        let fullest = facts.sequences.max { Self.ratio($0) < Self.ratio($1) }
        fullestSequenceRatio = fullest.map(Self.ratio) ?? 0
        fullestSequence = fullest?.name
        cacheHitRatio = facts.cacheHit
        databaseBytes = facts.databaseBytes
        archiveSecondsSinceArchived = facts.archiving?.secondsSinceArchived
        archiveWaitingSegments = facts.archiving?.waiting
        archiveFailing = facts.archiving?.failing
    }

    static func ratio(_ s: HealthFacts.Sequence) -> Double { s.maxValue > 0 ? Double(s.lastValue) / Double(s.maxValue) : 0 }

    /// `dbq_database_*{database}` gauges.
    public func record(database: String) {
        func gauge(_ name: String, _ value: Double, _ extra: [(String, String)] = []) {
            Gauge(label: "dbq_database_\(name)", dimensions: [("database", database)] + extra).record(value)
        }
        gauge("max_connections", Double(maxConnections))
        for state in Set(["active", "idle", "idle in transaction"]).union(connectionsByState.keys) {
            gauge("connections", Double(connectionsByState[state] ?? 0), [("state", state)])
        }
        gauge("longest_transaction_seconds", longestTransactionSeconds)
        gauge("longest_query_seconds", longestQuerySeconds)
        gauge("idle_in_transaction_sessions", Double(idleInTransaction))
        for (replica, lag) in replicationLagSeconds { gauge("replication_lag_seconds", lag, [("replica", replica)]) }
        gauge("transaction_ids_left", Double(transactionIDsLeft))
        gauge("sequence_fullest_ratio", fullestSequenceRatio)
        if let cacheHitRatio { gauge("cache_hit_ratio", cacheHitRatio) }
        gauge("size_bytes", Double(databaseBytes))
        if let archiveSecondsSinceArchived { gauge("archive_seconds_since_archived", archiveSecondsSinceArchived) }
        if let archiveWaitingSegments { gauge("archive_waiting_segments", Double(archiveWaitingSegments)) }
        if let archiveFailing { gauge("archive_failing", archiveFailing ? 1 : 0) }
    }
}
