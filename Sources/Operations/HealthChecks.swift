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
    public var cacheHit: Double?
    public var checkpointsTimed: Int64
    public var checkpointsRequested: Int64
    public var invalidIndexes: [String]
    public var sequences: [Sequence]
    public var databaseBytes: Int64

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
        public init() {}
    }

    /// PostgreSQL stops assigning transaction ids 3 million before 2^31.
    static let wraparoundLimit: Int64 = 2_147_483_647 - 3_000_000

    public static func evaluate(_ f: HealthFacts, thresholds t: Thresholds = Thresholds()) -> [HealthCheck] {
        var out: [HealthCheck] = []
        func grade(_ value: Double, _ warning: Double, _ critical: Double) -> HealthCheck.Status {
            value >= critical ? .critical : value >= warning ? .warning : .ok
        }
        func minutes(_ s: Double) -> String { s >= 120 ? String(format: "%.0f min", s / 60) : String(format: "%.0f s", s) }

        let used = f.connectionsByState.values.reduce(0, +)
        let share = Double(used) / Double(max(f.maxConnections, 1))
        let states = f.connectionsByState.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let connections = grade(share, t.connectionsWarning, t.connectionsCritical)
        out.append(HealthCheck(name: "connections", status: connections, value: String(format: "%d of %d (%.0f%%): %@", used, f.maxConnections, share * 100, states),
                               action: connections == .ok ? nil : "find who holds them (idle ones first); put a pooler (PgBouncer) in front"))

        let idle = f.idleInTransaction.max { $0.seconds < $1.seconds }
        let idleStatus = idle.map { grade($0.seconds, t.idleInTransactionWarning, t.idleInTransactionCritical) } ?? .ok
        out.append(HealthCheck(name: "idle-in-transaction", status: idleStatus,
                               value: idle.map { "\(f.idleInTransaction.count) session(s); the longest, pid \($0.pid), for \(minutes($0.seconds)): \($0.query.prefix(80))" } ?? "none",
                               action: idleStatus == .ok ? nil : "fix the application that leaves transactions open; meanwhile pg_terminate_backend(pid) or idle_in_transaction_session_timeout"))

        let tx = f.longestTransaction
        let txStatus = tx.map { grade($0.seconds, t.transactionWarning, t.transactionCritical) } ?? .ok
        out.append(HealthCheck(name: "longest-transaction", status: txStatus, value: tx.map { "pid \($0.pid), \(minutes($0.seconds)): \($0.query.prefix(80))" } ?? "none",
                               action: txStatus == .ok ? nil : "a long transaction keeps vacuum from removing dead rows; end it or find why it runs"))
        let query = f.longestQuery
        let queryStatus = query.map { grade($0.seconds, t.queryWarning, t.queryCritical) } ?? .ok
        out.append(HealthCheck(name: "longest-query", status: queryStatus, value: query.map { "pid \($0.pid), \(minutes($0.seconds)): \($0.query.prefix(80))" } ?? "none",
                               action: queryStatus == .ok ? nil : "look at its plan; pg_cancel_backend(pid) if it must stop; set statement_timeout"))

        let worst = f.blocked.max { $0.seconds < $1.seconds }
        let blockedStatus = worst.map { grade($0.seconds, t.blockedWarning, t.blockedCritical) } ?? .ok
        out.append(HealthCheck(name: "blocked-queries", status: blockedStatus,
                               value: worst.map { b in "\(f.blocked.count) blocked; pid \(b.pid) for \(minutes(b.seconds)) (\(b.query.prefix(60))) waits for "
                                   + b.blockers.map { "pid \($0.pid) (\($0.query.prefix(60)))" }.joined(separator: " ← ") } ?? "none",
                               action: blockedStatus == .ok ? nil : "end the first blocker of the chain (pg_terminate_backend) or the transaction it belongs to"))

        let lag = f.replicas.compactMap(\.lagSeconds).max()
        let lagStatus = lag.map { grade($0, t.replicationLagWarning, t.replicationLagCritical) } ?? .ok
        out.append(HealthCheck(name: "replication-lag", status: lagStatus,
                               value: f.replicas.isEmpty ? "no replicas" : f.replicas.map { "\($0.name) \($0.lagSeconds.map { minutes($0) } ?? "?")" }.joined(separator: ", "),
                               action: lagStatus == .ok ? nil : "check the replica's disk, network and apply (long queries on it delay replay)"))
        let slot = f.slots.max { $0.retainedBytes < $1.retainedBytes }
        let slotStatus = slot.map { grade(Double($0.retainedBytes), Double(t.slotWarningBytes), Double(t.slotCriticalBytes)) } ?? .ok
        out.append(HealthCheck(name: "replication-slots", status: slotStatus,
                               value: f.slots.isEmpty ? "none" : f.slots.map { "\($0.name)\($0.active ? "" : " (inactive)") holds \(bytes($0.retainedBytes)) of WAL" }.joined(separator: ", "),
                               action: slotStatus == .ok ? nil : "an inactive slot keeps WAL forever: reconnect its consumer or pg_drop_replication_slot"))

        let left = wraparoundLimit - f.xidAge
        let wrap: HealthCheck.Status = left <= t.wraparoundCritical ? .critical : left <= t.wraparoundWarning ? .warning : f.xidAge > f.freezeMaxAge * 2 ? .warning : .ok
        out.append(HealthCheck(name: "wraparound", status: wrap,
                               value: "\(left) transaction ids left before writes stop (age \(f.xidAge); autovacuum_freeze_max_age \(f.freezeMaxAge))",
                               action: wrap == .ok ? nil : "VACUUM (FREEZE) the oldest tables now (dbq push maintenance does them first); end long transactions that hold it back"))

        if let hit = f.cacheHit {
            let status: HealthCheck.Status = hit < t.cacheHitWarning ? .warning : .ok
            out.append(HealthCheck(name: "cache-hit", status: status, value: String(format: "%.2f%%", hit * 100),
                                   action: status == .ok ? nil : "the working set does not fit shared_buffers and the OS cache: more memory, or fewer full scans"))
        }
        let checkpoints = f.checkpointsTimed + f.checkpointsRequested
        let requested = checkpoints == 0 ? 0 : Double(f.checkpointsRequested) / Double(checkpoints)
        let cpStatus: HealthCheck.Status = checkpoints >= 10 && requested > t.requestedCheckpointsWarning ? .warning : .ok
        out.append(HealthCheck(name: "checkpoints", status: cpStatus,
                               value: "\(f.checkpointsRequested) requested, \(f.checkpointsTimed) timed",
                               action: cpStatus == .ok ? nil : "WAL fills before checkpoint_timeout: raise max_wal_size"))

        out.append(HealthCheck(name: "invalid-indexes", status: f.invalidIndexes.isEmpty ? .ok : .warning,
                               value: f.invalidIndexes.isEmpty ? "none" : f.invalidIndexes.joined(separator: ", "),
                               action: f.invalidIndexes.isEmpty ? nil : "rebuild or drop them (dbq push reindex / drop-index): they cost writes and serve no reads"))

        let fullest = f.sequences.max { Double($0.lastValue) / Double($0.maxValue) < Double($1.lastValue) / Double($1.maxValue) }
        let seqShare = fullest.map { Double($0.lastValue) / Double(max($0.maxValue, 1)) } ?? 0
        let seqStatus = grade(seqShare, t.sequenceWarning, t.sequenceCritical)
        out.append(HealthCheck(name: "sequences", status: seqStatus,
                               value: fullest.map { String(format: "%@ (%@) at %.1f%% of its maximum (%lld of %lld)", $0.name, $0.type, seqShare * 100, $0.lastValue, $0.maxValue) } ?? "none",
                               action: seqStatus == .ok ? nil : "move the column and its sequence to bigint before it runs out (inserts will fail)"))
        out.append(HealthCheck(name: "database-size", status: .ok, value: bytes(f.databaseBytes), action: nil))
        return out
    }

    /// 0 when nothing is critical, 2 when something is (as `dbq beat status`).
    public static func exitCode(_ checks: [HealthCheck]) -> Int32 { checks.contains { $0.status == .critical } ? 2 : 0 }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }
}
