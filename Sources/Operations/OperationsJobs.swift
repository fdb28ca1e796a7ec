import CoreMetrics
import DatabaseJobs
import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import Queue

/// `maintenance`: the plan (freeze by transaction-id age first, vacuum, analyze, reindex),
/// run within a budget after a preflight, each statement under lock_timeout with retries.
public struct MaintenanceJob: DatabaseJob {
    public static let kind = "maintenance"
    public static var lockClass: DatabaseLockClass? { .maintenance }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(12 * 3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        /// Seconds after which no new action starts.
        public var budgetSeconds: Double?
        public var dryRun: Bool?
        public var thresholds: MaintenancePlan.Thresholds?
        /// vacuum_cost_delay (ms) and vacuum_cost_limit for this job's sessions.
        public var costDelayMs: Double?
        public var costLimit: Int?
        /// A transaction open longer than this (seconds, default 3600), or replication lag
        /// past `maxLagSeconds` (default 300): `wait` (up to `preflightWaitSeconds`) or `skip`.
        public var maxTransactionSeconds: Double?
        public var maxLagSeconds: Double?
        public var preflight: String?
        public var preflightWaitSeconds: Double?
        public var lockTimeoutMs: Int?

        public init(database: String, budgetSeconds: Double? = nil, dryRun: Bool? = nil, thresholds: MaintenancePlan.Thresholds? = nil,
                    costDelayMs: Double? = nil, costLimit: Int? = nil, maxTransactionSeconds: Double? = nil, maxLagSeconds: Double? = nil,
                    preflight: String? = nil, preflightWaitSeconds: Double? = nil, lockTimeoutMs: Int? = nil) {
            self.database = database
            self.budgetSeconds = budgetSeconds
            self.dryRun = dryRun
            self.thresholds = thresholds
            self.costDelayMs = costDelayMs
            self.costLimit = costLimit
            self.maxTransactionSeconds = maxTransactionSeconds
            self.maxLagSeconds = maxLagSeconds
            self.preflight = preflight
            self.preflightWaitSeconds = preflightWaitSeconds
            self.lockTimeoutMs = lockTimeoutMs
        }
    }

    public init() {}

    /// The plan for a database now (what `dbq maintenance plan` prints).
    public static func plan(_ c: PostgresConnection, thresholds: MaintenancePlan.Thresholds) async throws -> [MaintenancePlan.Action] {
        MaintenancePlan.plan(tables: try await OperationsQueries.tableVitals(c),
                             indexes: try await OperationsQueries.indexVitals(c, minimumBytes: thresholds.bloatMinimumBytes), thresholds: thresholds)
    }

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        if let p = payload.preflight, !["wait", "skip"].contains(p) { throw JobError.permanent("preflight must be wait or skip, not '\(p)'") }
                return try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            var payload = payload
            // Without thresholds in the job (a schedule entry), the database's in dbq.yaml.
            if payload.thresholds == nil { payload.thresholds = overridden(MaintenancePlan.Thresholds(), env.configuration.maintenance[payload.database]) }
            return try await database.withConnection(application: "dbq maintenance") { c in
                try await Self.maintain(payload, connection: c, url: database.url, context: context)
            }
        }
    }

    static func maintain(_ payload: Payload, connection c: PostgresConnection, url: PostgresConnectionString, context: JobContext) async throws -> JSONValue {
        let started = ContinuousClock.now
        let thresholds = payload.thresholds ?? MaintenancePlan.Thresholds()
        var result = Result(database: payload.database)
        // Preflight: an old transaction keeps vacuum from removing rows; a lagging replica
        // would fall further behind.
        let maxTransaction = payload.maxTransactionSeconds ?? 3600, maxLag = payload.maxLagSeconds ?? 300
        let deadline = ContinuousClock.now + .seconds(payload.preflightWaitSeconds ?? 600)
        while true {
            let (tx, lag) = try await OperationsQueries.preflight(c)
            var reasons: [String] = []
            if let tx, tx.seconds > maxTransaction {
                reasons.append(String(format: "a transaction (pid %d) has been open %.0f s (more than %.0f s): vacuum could not remove the rows it can still see", tx.pid, tx.seconds, maxTransaction))
            }
            if let lag, lag > maxLag { reasons.append(String(format: "replication lag is %.0f s (more than %.0f s)", lag, maxLag)) }
            if reasons.isEmpty { break }
            if payload.preflight == "wait" && ContinuousClock.now < deadline {
                await context.progress(JobProgress(message: "preflight: waiting: " + reasons.joined(separator: "; ")))
                try await Task.sleep(for: .seconds(2))
                continue
            }
            result.skipped = .preflight("preflight: " + reasons.joined(separator: "; ") + (payload.preflight == "wait" ? " (waited, still so)" : ""))
            result.actions = []
            return try result.json
        }
        let actions = try await plan(c, thresholds: thresholds)
        if payload.dryRun ?? false {
            result.dryRun = true
            result.plan = actions.map { Result.Planned(kind: $0.kind.rawValue, target: $0.target, reason: $0.reason, sql: $0.sql) }
            return try result.json
        }
        if let delay = payload.costDelayMs { _ = try await c.execute("SET vacuum_cost_delay = \(delay)") }
        if let limit = payload.costLimit { _ = try await c.execute("SET vacuum_cost_limit = \(limit)") }
        let retry = LockRetry(lockTimeoutMs: payload.lockTimeoutMs)
        let pid = try await c.query("SELECT pg_backend_pid()").scalar ?? "0"
        var ran: [Result.Ran] = []
        var skipped: [Result.Skipped.Action] = []
        for (index, action) in actions.enumerated() {
            guard MaintenancePlan.withinBudget(elapsed: (ContinuousClock.now - started).seconds, budget: payload.budgetSeconds) else {
                skipped.append(Result.Skipped.Action(kind: action.kind.rawValue, target: action.target, reason: "budget spent"))
                continue
            }
            await context.progress(JobProgress(fraction: Double(index) / Double(actions.count), message: "\(action.kind.rawValue) \(action.target)"))
            let before = try await vitals(action.table, c)
            let t0 = ContinuousClock.now
            do {
                try await retry.run(c, what: action.sql, logger: context.logger) {
                    do {
                        try await watching(pid: pid, url: url, context: context, label: "\(action.kind.rawValue) \(action.target)") {
                            _ = try await c.execute(action.sql)
                        }
                    } catch where action.kind == .reindex {
                        // Each failed REINDEX CONCURRENTLY leaves an INVALID <name>_ccnew
                        // that every write then maintains: dropped before the next attempt.
                        try await ReindexLeftovers.drop(table: action.table, connection: c)
                        throw error
                    }
                }
            } catch where LockRetry.isNotGranted(error) {
                // One busy table does not cost the others their turn.
                skipped.append(Result.Skipped.Action(kind: action.kind.rawValue, target: action.target,
                                                     reason: "its lock was not granted in \(retry.attempts) attempts of lock_timeout \(retry.lockTimeout.milliseconds) ms"))
                continue
            }
            let after = try await vitals(action.table, c)
            var line = Result.Ran(kind: action.kind.rawValue, target: action.target, reason: action.reason, seconds: (ContinuousClock.now - t0).seconds)
            if let before, let after {
                line.deadRowsBefore = before.deadRows
                line.deadRowsAfter = after.deadRows
                line.xidAgeBefore = before.xidAge
                line.xidAgeAfter = after.xidAge
            }
            ran.append(line)
        }
        result.actions = ran
        if !skipped.isEmpty { result.skipped = .actions(skipped) }
        result.seconds = (ContinuousClock.now - started).seconds
        return try result.json
    }

    /// The actions run (or, dry, planned), and what was skipped and why.
    public struct Result: JobResult {
        public struct Planned: Encodable, Sendable {
            public var kind: String
            public var target: String
            public var reason: String
            public var sql: String
        }
        public struct Ran: Encodable, Sendable {
            public var kind: String
            public var target: String
            public var reason: String
            public var seconds: Double
            public var deadRowsBefore: Int64?
            public var deadRowsAfter: Int64?
            public var xidAgeBefore: Int64?
            public var xidAgeAfter: Int64?
        }
        /// The whole run skipped by the preflight (its reason), or actions past the budget.
        public enum Skipped: Encodable, Sendable {
            public struct Action: Encodable, Sendable {
                public var kind: String
                public var target: String
                public var reason: String
            }
            case preflight(String)
            case actions([Action])
            public func encode(to encoder: any Encoder) throws {
                switch self {
                case .preflight(let reason): try reason.encode(to: encoder)
                case .actions(let actions): try actions.encode(to: encoder)
                }
            }
        }
        public var database: String
        public var dryRun: Bool?
        public var plan: [Planned]?
        public var actions: [Ran]?
        public var skipped: Skipped?
        public var seconds: Double?
    }

    static func vitals(_ table: String, _ c: PostgresConnection) async throws -> TableVitals? {
        guard let r = try await c.query("""
            SELECT coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), coalesce(s.n_mod_since_analyze, 0), age(cl.relfrozenxid)
            FROM pg_class cl LEFT JOIN pg_stat_user_tables s ON s.relid = cl.oid WHERE cl.oid = to_regclass($1)
            """, [PostgresParameter(table)]).first else { return nil }
        let parts = table.split(separator: ".", maxSplits: 1).map(String.init)
        return TableVitals(schema: parts.first ?? "", name: parts.last ?? "", liveRows: Int64(r[0] ?? "0") ?? 0, deadRows: Int64(r[1] ?? "0") ?? 0,
                           modifiedSinceAnalyze: Int64(r[2] ?? "0") ?? 0, xidAge: Int64(r[3] ?? "0") ?? 0)
    }

    /// Runs `body` while a second connection reports vacuum's (or a rebuild's) progress.
    static func watching(pid: String, url: PostgresConnectionString, context: JobContext, label: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await ProgressWatch.run(url: url, context: context, query: """
            SELECT phase, heap_blks_scanned, heap_blks_total FROM pg_stat_progress_vacuum WHERE pid = \(Int(pid) ?? 0)
            UNION ALL SELECT phase, blocks_done, blocks_total FROM pg_stat_progress_create_index WHERE pid = \(Int(pid) ?? 0)
            """, report: { row in
                guard let phase = row[0] else { return nil }
                let done = Double(row[1] ?? "0") ?? 0, total = Double(row[2] ?? "0") ?? 0
                return JobProgress(fraction: total > 0 ? done / total : nil, message: "\(label): \(phase)")
            }, body)
    }
}

/// `health`: the checks, with their verdicts. A critical finding fails the job (dead at
/// once, not retried), its error naming every critical check: an operator sees it as a
/// failed job, `dbq push health --wait` exits 1, and alerts raise `health_critical` (and
/// `archiving_failing` for the archiving check). Warnings are a result, with `warnings`.
/// The metrics of the checks are recorded either way.
public struct HealthJob: DatabaseJob {
    public static let kind = "health"
    public static var defaultMaxAttempts: Int { 2 }
    public static var defaultTimeout: Duration { .seconds(300) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var thresholds: HealthChecks.Thresholds?
        public init(database: String, thresholds: HealthChecks.Thresholds? = nil) {
            self.database = database
            self.thresholds = thresholds
        }
    }

    public struct Report: Codable, Sendable {
        public var database: String
        public var checks: [HealthCheck]
        public var critical: Bool
        public var warnings: Int
        /// The database's state as numbers, exported as gauges (no query text).
        public var figures: HealthFigures?
    }

    public init() {}

    /// `dbq_health_check_status{database, check}`: 0 ok, 1 warning, 2 critical, per check
    /// of the last health job (the `archiving` check among them when archive_mode is on).
    public static func recordMetrics(result: JSONValue) {
        guard case .object(let fields) = result, case .string(let database)? = fields["database"],
              case .array(let checks)? = fields["checks"] else { return }
        for case .object(let check) in checks {
            guard case .string(let name)? = check["name"], case .string(let status)? = check["status"] else { continue }
            let value: Double = status == "critical" ? 2 : status == "warning" ? 1 : 0
            Gauge(label: "dbq_health_check_status", dimensions: [("database", database), ("check", name)]).record(value)
        }
        if let figures = fields["figures"], let decoded = try? figures.decode(HealthFigures.self) { decoded.record(database: database) }
    }

    public static func report(_ url: PostgresConnectionString, database: String, thresholds: HealthChecks.Thresholds, logger: Logger) async throws -> Report {
        let facts = try await DatabaseScope.withConnection(url, database: database, application: "dbq health", logger: logger) {
            try await OperationsQueries.healthFacts($0)
        }
        let checks = HealthChecks.evaluate(facts, thresholds: thresholds)
        return Report(database: database, checks: checks, critical: HealthChecks.exitCode(checks) == 2, warnings: checks.filter { $0.status == .warning }.count,
                      figures: HealthFigures(facts))
    }

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let report = try await Self.report(try env.database(payload.database), database: payload.database,
                                           thresholds: payload.thresholds ?? overridden(HealthChecks.Thresholds(), env.configuration.health[payload.database]),
                                           logger: context.logger)
        let result = try JSONValue(encoding: report)
        if report.critical {
            Self.recordMetrics(result: result)
            throw JobError.permanent(Self.criticalMessage(report))
        }
        return result
    }

    /// "critical: connections: 195 of 200 (97 %) — raise max_connections…; archiving: …"
    public static func criticalMessage(_ report: Report) -> String {
        "critical: " + report.checks.filter { $0.status == .critical }.map { check in
            "\(check.name): \(check.value)" + (check.action.map { " — \($0)" } ?? "")
        }.joined(separator: "; ")
    }
}

/// Stats samples in a store: `stats/<database>/<UTC time>-<id>.json`, the newest `keep` kept.
public enum StatsStore {
    public static let root = "stats"
    public static let keep = 2000

    public static func save(_ sample: StatsSample, id: String, store: any ObjectStore) async throws -> String {
        let key = "\(root)/\(sample.database)/\(ArtefactLayout.id(startedAt: sample.takenAt, jobID: id)).json"
        _ = try await store.put(key, bytes: Array(try ManifestCoding.encoder.encode(sample)))
        let all = try await store.list(prefix: "\(root)/\(sample.database)/").map(\.key).sorted()
        for old in all.dropLast(keep) { try await store.delete(old) }
        return key
    }

    /// The database's samples taken at or after `since`, oldest first.
    public static func load(database: String, since: Date, store: any ObjectStore) async throws -> [StatsSample] {
        var samples: [StatsSample] = []
        for info in try await store.list(prefix: "\(root)/\(database)/") where info.key.hasSuffix(".json") {
            guard let sample = try? ManifestCoding.decoder.decode(StatsSample.self, from: Data(try await store.getBytes(info.key))), sample.takenAt >= since else { continue }
            samples.append(sample)
        }
        return samples.sorted { $0.takenAt < $1.takenAt }
    }
}

/// `stats`: a sample of sizes, rows, scans and the top statements, kept in the storage.
public struct StatsJob: DatabaseJob {
    public static let kind = "stats"
    public static var defaultMaxAttempts: Int { 2 }
    public static var defaultTimeout: Duration { .seconds(600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        public init(database: String, storage: String? = nil) {
            self.database = database
            self.storage = storage
        }
    }

    public init() {}

    public static func sample(_ url: PostgresConnectionString, database: String, logger: Logger) async throws -> StatsSample {
        try await DatabaseScope.withConnection(url, database: database, application: "dbq stats", logger: logger) {
            try await OperationsQueries.statsSample($0, database: database)
        }
    }

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let sample = try await Self.sample(url, database: payload.database, logger: context.logger)
        let key = try await StatsStore.save(sample, id: context.id, store: store)
        return try Result(database: payload.database, sample: key, tables: sample.tables.count, statements: sample.statements.count,
                          databaseBytes: sample.databaseBytes).json
    }

    /// Where the sample was kept, and its size.
    public struct Result: JobResult {
        public var database: String
        /// The sample's key in the store.
        public var sample: String
        public var tables: Int
        public var statements: Int
        public var databaseBytes: Int64
    }
}

extension JobRegistry {
    /// Registers maintenance, health, stats and partitions.
    public mutating func registerOperationsJobs(environment: @escaping JobEnvironment.Provider) {
        register(MaintenanceJob.self, environment: environment)
        register(HealthJob.self, environment: environment)
        register(StatsJob.self, environment: environment)
        register(PartitionsJob.self, environment: environment)
    }
}
