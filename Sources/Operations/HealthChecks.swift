import DatabaseJobs
import Foundation

/// What a health run reads from the server, in one place.
public struct HealthFacts: Sendable, Equatable, Codable {
    public struct Session: Sendable, Equatable, Codable {
        public var pid: Int
        public var seconds: Double
        public var query: String
    }
    public struct Blocked: Sendable, Equatable, Codable {
        public var pid: Int
        public var seconds: Double
        public var query: String
        /// The chain of blockers, nearest first: pid and what it runs.
        public var blockers: [Session]
    }
    public struct Replica: Sendable, Equatable, Codable {
        public var name: String
        public var lagSeconds: Double?
    }
    public struct Slot: Sendable, Equatable, Codable {
        public var name: String
        public var active: Bool
        public var retainedBytes: Int64
    }
    public struct Sequence: Sendable, Equatable, Codable {
        public var name: String
        public var type: String
        public var lastValue: Int64
        public var maxValue: Int64
    }

    public var maxConnections: Int
    public var connectionsByState: [String: Int]
    public var idleInTransaction: [Session]
    public var longestTransaction: Session?
    public var longestQuery: Session?
    public var blocked: [Blocked]
    public var replicas: [Replica]
    public var slots: [Slot]
    /// age(datfrozenxid) of the oldest database, and autovacuum_freeze_max_age.
    public var xidAge: Int64
    public var freezeMaxAge: Int64
    /// mxid_age(datminmxid) of the oldest database: MultiXact ids wrap around like
    /// transaction ids (row locks shared by several transactions use them).
    public var multixactAge: Int64 = 0
    public var cacheHit: Double?
    public var checkpointsTimed: Int64
    public var checkpointsRequested: Int64
    public var invalidIndexes: [String]
    public var sequences: [Sequence]
    public var databaseBytes: Int64
    /// WAL archiving, when `archive_mode` is not off: what `pg_stat_archiver` says and
    /// how many segments wait (`.ready` in `pg_wal/archive_status`).
    public var archiving: Archiving?

    public struct Archiving: Sendable, Equatable, Codable {
        public var lastArchivedWAL: String?
        public var secondsSinceArchived: Double?
        public var lastFailedWAL: String?
        /// The last attempt failed (a failure after the last success).
        public var failing: Bool
        /// Segments waiting to be archived (nil when the role may not list them).
        public var waiting: Int?
        public init(lastArchivedWAL: String? = nil, secondsSinceArchived: Double? = nil, lastFailedWAL: String? = nil, failing: Bool = false, waiting: Int? = nil) {
            self.lastArchivedWAL = lastArchivedWAL
            self.secondsSinceArchived = secondsSinceArchived
            self.lastFailedWAL = lastFailedWAL
            self.failing = failing
            self.waiting = waiting
        }
    }

    public init(maxConnections: Int, connectionsByState: [String: Int] = [:], idleInTransaction: [Session] = [], longestTransaction: Session? = nil,
                longestQuery: Session? = nil, blocked: [Blocked] = [], replicas: [Replica] = [], slots: [Slot] = [], xidAge: Int64 = 0,
                freezeMaxAge: Int64 = 200_000_000, cacheHit: Double? = nil, checkpointsTimed: Int64 = 0, checkpointsRequested: Int64 = 0,
                invalidIndexes: [String] = [], sequences: [Sequence] = [], databaseBytes: Int64 = 0) {
        self.maxConnections = maxConnections
        self.connectionsByState = connectionsByState
        self.idleInTransaction = idleInTransaction
        self.longestTransaction = longestTransaction
        self.longestQuery = longestQuery
        self.blocked = blocked
        self.replicas = replicas
        self.slots = slots
        self.xidAge = xidAge
        self.freezeMaxAge = freezeMaxAge
        self.cacheHit = cacheHit
        self.checkpointsTimed = checkpointsTimed
        self.checkpointsRequested = checkpointsRequested
        self.invalidIndexes = invalidIndexes
        self.sequences = sequences
        self.databaseBytes = databaseBytes
    }
}

/// One check's verdict, its measured value and what to do.
public struct HealthCheck: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable, Comparable {
        case ok, warning, critical
        var rank: Int { self == .ok ? 0 : self == .warning ? 1 : 2 }
        public static func < (a: Status, b: Status) -> Bool { a.rank < b.rank }
    }
    public var name: String
    public var status: Status
    public var value: String
    public var action: String?
}

/// One health check: a name and a pure verdict from the facts and thresholds, or nil
/// when the facts it needs are absent.
protocol HealthRule: Sendable {
    func check(_ facts: HealthFacts, _ thresholds: HealthChecks.Thresholds) -> HealthCheck?
}

/// Health verdicts from `HealthFacts` and thresholds (check_postgres's and pghero's). Pure.
public enum HealthChecks {
    public struct Thresholds: Sendable, Equatable, Codable {
        public var connectionsWarning = 0.8, connectionsCritical = 0.95
        public var idleInTransactionWarning: Double = 300, idleInTransactionCritical: Double = 1800
        public var transactionWarning: Double = 3600, transactionCritical: Double = 6 * 3600
        public var queryWarning: Double = 300, queryCritical: Double = 3600
        public var blockedWarning: Double = 30, blockedCritical: Double = 300
        public var replicationLagWarning: Double = 60, replicationLagCritical: Double = 600
        public var slotWarningBytes: Int64 = 1 << 30, slotCriticalBytes: Int64 = 10 << 30
        /// Transaction ids left before the server stops accepting writes (pghero warns under 10 million).
        public var wraparoundWarning: Int64 = 100_000_000, wraparoundCritical: Int64 = 10_000_000
        public var cacheHitWarning = 0.95
        public var requestedCheckpointsWarning = 0.5
        public var sequenceWarning = 0.75, sequenceCritical = 0.9
        /// WAL segments waiting to be archived (each one more a restore cannot reach yet).
        public var archiveWaitingWarning = 10, archiveWaitingCritical = 100
        public init() {}
    }

    /// PostgreSQL stops assigning transaction ids 3 million before 2^31.
    static let wraparoundLimit: Int64 = 2_147_483_647 - 3_000_000

    /// Every check's verdict, in the order `all` lists them (a check whose facts are
    /// absent, as a cache hit ratio before any read, gives none).
    public static func evaluate(_ facts: HealthFacts, thresholds: Thresholds = Thresholds()) -> [HealthCheck] {
        all.compactMap { $0.check(facts, thresholds) }
    }

    /// The checks, one file each under `Checks/`, in the order a report lists them.
    static let all: [any HealthRule] = [
        ConnectionsCheck(), IdleInTransactionCheck(), LongestTransactionCheck(), LongestQueryCheck(), BlockedQueriesCheck(),
        ReplicationLagCheck(), ReplicationSlotsCheck(), WraparoundCheck(), MultiXactWraparoundCheck(), CacheHitCheck(), CheckpointsCheck(), InvalidIndexesCheck(),
        SequencesCheck(), ArchivingCheck(), DatabaseSizeCheck(),
    ]

    static func grade(_ value: Double, _ warning: Double, _ critical: Double) -> HealthCheck.Status {
        value >= critical ? .critical : value >= warning ? .warning : .ok
    }

    static func minutes(_ s: Double) -> String { s >= 120 ? String(format: "%.0f min", s / 60) : String(format: "%.0f s", s) }

    /// 0 when nothing is critical, 2 when something is (as `dbq beat status`).
    public static func exitCode(_ checks: [HealthCheck]) -> Int32 { checks.contains { $0.status == .critical } ? 2 : 0 }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }
}
