import DatabaseJobs
import DBQSupport
import Foundation
import PostgresClient
import Queue

/// `partitions`: for each declared range-partitioned table, make the partitions ahead of
/// time, detach or drop those past retention (under lock_timeout, retried), and report
/// rows in the default partition — without pg_partman.
public struct PartitionsJob: DatabaseJob {
    public static let kind = "partitions"
    public static var lockClass: DatabaseLockClass? { .ddl }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var tables: [PartitionSpec]
        public var dryRun: Bool?
        public var lockTimeoutMs: Int?
        /// Tests: the time to plan for (default: the database's clock, not the worker's).
        public var now: Date?
        public init(database: String, tables: [PartitionSpec], dryRun: Bool? = nil, lockTimeoutMs: Int? = nil, now: Date? = nil) {
            self.database = database
            self.tables = tables
            self.dryRun = dryRun
            self.lockTimeoutMs = lockTimeoutMs
            self.now = now
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        guard !payload.tables.isEmpty else {
            throw JobError.permanent("no partitioned tables for database '\(payload.database)': declare them in dbq.yaml under partitions: {\(payload.database): [{table: public.events, interval: daily, premake: 7, retention: 90d}]}")
        }
        return try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            try await database.withConnection(application: "dbq partitions") { c in
                _ = try await c.execute("SET TIME ZONE 'UTC'")
                let retry = LockRetry(lockTimeoutMs: payload.lockTimeoutMs)
                var tables: [String: TableResult] = [:]
                for spec in payload.tables {
                    let now: Date
                    if let fixed = payload.now { now = fixed } else { now = try await Self.databaseNow(c) }
                    tables[spec.table] = try await Self.keep(spec, connection: c, retry: retry, dryRun: payload.dryRun ?? false, now: now, context: context)
                }
                return try Result(database: payload.database, dryRun: payload.dryRun ?? false, tables: tables).json
            }
        }
    }

    /// The database's clock: retention follows the time the rows were written by.
    static func databaseNow(_ c: PostgresConnection) async throws -> Date {
        guard let epoch = try await c.query("SELECT extract(epoch FROM now())").scalar.flatMap(Double.init) else {
            throw JobError.permanent("the database did not say what time it is (SELECT now())")
        }
        return Date(timeIntervalSince1970: epoch)
    }

    /// The comment a partition detached to be dropped carries until it is: a run that
    /// stopped between the two finds it by this and drops it.
    static func retiredMark(_ parent: String) -> String { "dbq partitions: detached from \(parent) to be dropped" }

    static func keep(_ spec: PartitionSpec, connection c: PostgresConnection, retry: LockRetry, dryRun: Bool, now: Date, context: JobContext) async throws -> TableResult {
        let parts = spec.table.split(separator: ".", maxSplits: 1).map(String.init)
        let (schema, name) = parts.count == 2 ? (parts[0], parts[1]) : ("public", parts[0])
        let parent = try PostgresIdentifier.qualified(schema: schema, name: name)
        guard let info = try await c.query("""
            SELECT pt.partstrat::text, pt.partnatts, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]),
                   (SELECT format_type(a.atttypid, NULL) FROM pg_attribute a WHERE a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0])
            FROM pg_partitioned_table pt WHERE pt.partrelid = to_regclass($1)
            """, [PostgresParameter(parent)]).first else {
            throw JobError.permanent("\(spec.table) is not a partitioned table (or does not exist); create it PARTITION BY RANGE (a date or timestamp column)")
        }
        guard info[0] == "r", info[1] == "1", let key = info[2], let type = info[3],
              ["date", "timestamp without time zone", "timestamp with time zone"].contains(type) else {
            throw JobError.permanent("\(spec.table) must be partitioned BY RANGE on one date or timestamp column (it is by \(info[0] ?? "?") on \(info[2] ?? "?") \(info[3] ?? ""))")
        }
        var existing: [PartitionPlan.Existing] = []
        var defaultPartition: String?
        for row in try await c.query("""
            SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = to_regclass($1) ORDER BY 2
            """, [PostgresParameter(parent)]) {
            guard let childSchema = row[0], let child = row[1], let bound = row[2] else { continue }
            let pending = row[3] == "t"
            if bound == "DEFAULT" { defaultPartition = try PostgresIdentifier.qualified(schema: childSchema, name: child); continue }
            let literals = Self.literals(bound)
            guard literals.count == 2 else { continue }
            func date(_ literal: String?) async throws -> Date {
                guard let literal else { return literals.first == nil ? .distantPast : .distantFuture }
                let epoch = try await c.query("SELECT extract(epoch FROM $1::timestamptz)", [PostgresParameter(literal)]).scalar.flatMap(Double.init) ?? 0
                return Date(timeIntervalSince1970: epoch)
            }
            existing.append(.init(name: child, from: literals[0] == nil ? .distantPast : try await date(literals[0]),
                                  to: literals[1] == nil ? .distantFuture : try await date(literals[1]),
                                  schema: childSchema == schema ? nil : childSchema, detachPending: pending))
        }
        var defaultRows: [(key: Date, count: Int64)] = []
        if let defaultPartition {
            let unit = ["hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"][spec.interval.rawValue]!
            let quotedKey = try PostgresIdentifier.quoted(key)
            defaultRows = try await c.query("""
                SELECT extract(epoch FROM date_trunc('\(unit)', \(quotedKey)::timestamptz)), count(*) FROM \(defaultPartition) WHERE \(quotedKey) IS NOT NULL GROUP BY 1 ORDER BY 1
                """).compactMap { r in
                guard let e = r[0].flatMap(Double.init), let n = r[1].flatMap({ Int64($0) }) else { return nil }
                return (Date(timeIntervalSince1970: e), n)
            }
        }
        let plan = PartitionPlan.plan(spec, table: name, existing: existing, defaultRows: defaultRows, now: now)
        func literal(_ date: Date) -> String {
            let f = Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!)
            let text = date.formatted(f) // 2026-03-01T00:00:00Z
            switch type {
            case "date": return "'" + String(text.prefix(10)) + "'"
            case "timestamp without time zone": return "'" + text.prefix(19).replacingOccurrences(of: "T", with: " ") + "'"
            default: return "'" + text.prefix(19).replacingOccurrences(of: "T", with: " ") + "+00'"
            }
        }
        var created: [String] = []
        var retired: [String] = []
        var notes = plan.notes
        if !dryRun {
            for (child, from, to) in plan.create {
                let qualifiedChild = try PostgresIdentifier.qualified(schema: schema, name: child)
                try await retry.run(c, what: "creating partition \(child)", logger: context.logger) {
                    _ = try await c.execute("CREATE TABLE IF NOT EXISTS \(qualifiedChild) PARTITION OF \(parent) FOR VALUES FROM (\(literal(from))) TO (\(literal(to)))")
                }
                created.append(child)
            }
            // Detached to be dropped by a run that stopped before the drop: dropped now.
            if spec.retentionAction == .drop {
                for row in try await c.query("""
                    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'r' AND NOT c.relispartition AND obj_description(c.oid, 'pg_class') = $1 ORDER BY 2
                    """, [PostgresParameter(Self.retiredMark(parent))]) {
                    guard let childSchema = row[0], let child = row[1] else { continue }
                    let qualifiedChild = try PostgresIdentifier.qualified(schema: childSchema, name: child)
                    try await retry.run(c, what: "dropping partition \(child), detached by an earlier run", logger: context.logger) {
                        _ = try await c.execute("DROP TABLE \(qualifiedChild)")
                    }
                    retired.append(child)
                }
            }
            // DETACH … CONCURRENTLY locks the parent only SHARE UPDATE EXCLUSIVE; PostgreSQL
            // refuses it while a default partition exists, and then the detach and its drop
            // share one transaction.
            let concurrently = defaultPartition == nil
            if !concurrently && !plan.retire.isEmpty {
                notes.append("detached without CONCURRENTLY (PostgreSQL allows it only without a default partition): the parent was locked ACCESS EXCLUSIVE for each detach")
            }
            // A pending detach first: PostgreSQL detaches nothing else from the parent meanwhile.
            for old in plan.retire.filter(\.detachPending) + plan.retire.filter({ !$0.detachPending }) {
                let qualifiedChild = try PostgresIdentifier.qualified(schema: old.schema ?? schema, name: old.name)
                let drop = spec.retentionAction == .drop
                if concurrently || old.detachPending {
                    if drop { _ = try await c.execute("COMMENT ON TABLE \(qualifiedChild) IS \(PostgresLiteral.quoted(Self.retiredMark(parent)))") }
                    try await retry.run(c, what: "detaching partition \(old.name)", logger: context.logger) {
                        // A lock timeout in the detach's second phase leaves it pending: finished, not started again.
                        let state = try await c.query("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)",
                                                      [PostgresParameter(qualifiedChild), PostgresParameter(parent)]).scalar
                        switch state {
                        case "t": _ = try await c.execute("ALTER TABLE \(parent) DETACH PARTITION \(qualifiedChild) FINALIZE")
                        case "f": _ = try await c.execute("ALTER TABLE \(parent) DETACH PARTITION \(qualifiedChild) CONCURRENTLY")
                        default: break
                        }
                    }
                    if drop {
                        try await retry.run(c, what: "dropping partition \(old.name)", logger: context.logger) {
                            _ = try await c.execute("DROP TABLE \(qualifiedChild)")
                        }
                    }
                } else {
                    try await retry.run(c, what: "detaching partition \(old.name)", logger: context.logger) {
                        _ = try await c.execute("BEGIN")
                        do {
                            _ = try await c.execute("ALTER TABLE \(parent) DETACH PARTITION \(qualifiedChild)")
                            if drop { _ = try await c.execute("DROP TABLE \(qualifiedChild)") }
                            _ = try await c.execute("COMMIT")
                        } catch {
                            _ = try? await c.execute("ROLLBACK")
                            throw error
                        }
                    }
                }
                retired.append(old.name)
            }
        } else {
            created = plan.create.map(\.name)
            retired = plan.retire.map(\.name)
        }
        return TableResult(created: created, retired: retired, dropsRetired: spec.retentionAction == .drop,
                           refused: plan.refused.isEmpty ? nil : plan.refused, notes: notes.isEmpty ? nil : notes,
                           defaultRows: defaultPartition == nil ? nil : defaultRows.reduce(0) { $0 + $1.count })
    }

    /// What each partitioned table got.
    public struct Result: JobResult {
        public var database: String
        public var dryRun: Bool
        public var tables: [String: TableResult]
    }

    /// Partitions created, and retired under the key of what retirement did (`detached`
    /// or `dropped`); what was refused, notes, rows in the default partition.
    public struct TableResult: Encodable, Sendable {
        public var created: [String]
        public var retired: [String]
        public var dropsRetired: Bool
        public var refused: [String]?
        public var notes: [String]?
        public var defaultRows: Int64?

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ string: String) { stringValue = string }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(created, forKey: Key("created"))
            try container.encode(retired, forKey: Key(dropsRetired ? "dropped" : "detached"))
            try container.encodeIfPresent(refused, forKey: Key("refused"))
            try container.encodeIfPresent(notes, forKey: Key("notes"))
            try container.encodeIfPresent(defaultRows, forKey: Key("defaultRows"))
        }
    }

    /// The quoted literals of `FOR VALUES FROM (…) TO (…)`; nil for MINVALUE/MAXVALUE.
    static func literals(_ bound: String) -> [String?] {
        guard let from = bound.range(of: "FROM ("), let to = bound.range(of: ") TO (") else { return [] }
        func literal(_ text: Substring) -> String? {
            guard let open = text.firstIndex(of: "'") else { return nil }
            let rest = text[text.index(after: open)...]
            guard let close = rest.firstIndex(of: "'") else { return nil }
            return String(rest[..<close])
        }
        return [literal(bound[from.upperBound..<to.lowerBound]), literal(bound[to.upperBound...])]
    }
}
