import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import Logging
import ObjectStorage
@testable import Operations
import PostgresClient
import Queue
import Testing

/// Real PostgreSQL: maintenance vacuums what needs it and not the rest, the preflight sees
/// an old transaction, health finds what a monitor must, stats show a statement slowing.
@Suite("Maintenance, health and stats against real PostgreSQL", .serialized)
struct OperationsRunTests {
    static let logger = Logger(label: "dbq.test.operations")
    static var server: PostgresConnectionString { JobFixtures.server }

    static func makeDatabase() async throws -> String {
        let name = try await ScratchDatabase.create("dbqt_ops")
        return name
    }

    static func connect(_ database: String) async throws -> PostgresConnection { try await JobFixtures.connect(database) }
    static func drop(_ name: String) async { await ScratchDatabase.drop(name) }

    static func environment(_ database: String) throws -> JobEnvironment {
        try JobFixtures.environment(main: database, storage: JobFixtures.localStorage("dbq-stats"), logger: logger)
    }

    static func context(_ kind: String) -> JobContext { JobFixtures.context(kind, logger: logger) }

    static func object(_ value: JSONValue?) -> [String: JSONValue] { JobFixtures.object(value) }

    @Test("a table with many dead rows is vacuumed (dead rows before and after in the result); a clean one is not; a dry run changes nothing")
    func maintenance() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE dirty (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
            CREATE TABLE clean (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
            INSERT INTO dirty SELECT i, md5(i::text) FROM generate_series(1, 50000) i;
            INSERT INTO clean SELECT i, md5(i::text) FROM generate_series(1, 50000) i;
            """)
        // The inserts' counts reach the statistics before the analyze resets them.
        _ = try await c.query("SELECT pg_stat_force_next_flush()")
        _ = try await c.query("SELECT 1")
        _ = try await c.execute("VACUUM ANALYZE dirty")
        _ = try await c.execute("VACUUM ANALYZE clean")
        _ = try await c.execute("DELETE FROM dirty WHERE id % 2 = 0")
        _ = try await c.query("SELECT pg_stat_force_next_flush()")
        _ = try await c.query("SELECT 1")
        let env = try Self.environment(db)
        let dry = Self.object(try await MaintenanceJob().run(.init(database: "main", dryRun: true), in: env, context: Self.context("maintenance")))
        guard case .array(let plan)? = dry["plan"] else { Issue.record("no plan: \(dry)"); return }
        #expect(plan.map { Self.object($0)["target"] } == [.string("public.dirty")], "\(plan)")
        #expect(try await c.query("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'dirty'").scalar == "25000")

        let result = Self.object(try await MaintenanceJob().run(.init(database: "main", costDelayMs: 0), in: env, context: Self.context("maintenance")))
        guard case .array(let actions)? = result["actions"] else { Issue.record("no actions: \(result)"); return }
        #expect(actions.count == 1)
        let action = Self.object(actions.first)
        #expect(action["kind"] == .string("vacuum") && action["target"] == .string("public.dirty"))
        #expect(action["deadRowsBefore"] == .number(25_000))
        #expect(action["deadRowsAfter"] == .number(0))
        #expect(try await c.query("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'clean'").scalar == "1", "the clean table was left alone")
    }

    @Test("maintenance that freezes and rebuilds bloated indexes; a table another session holds is passed over after its lock attempts, the rest still run, and no INVALID index is left")
    func freezeAndReindex() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE bloated (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
            CREATE TABLE busy (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
            INSERT INTO bloated SELECT i, md5(i::text) FROM generate_series(1, 200000) i;
            INSERT INTO busy SELECT i, md5(i::text) FROM generate_series(1, 200000) i;
            DELETE FROM bloated WHERE id % 10 <> 0;
            DELETE FROM busy WHERE id % 10 <> 0;
            """)
        _ = try await c.execute("VACUUM ANALYZE bloated")
        _ = try await c.execute("VACUUM ANALYZE busy")
        let holder = try await Self.connect(db)
        defer { Task { await holder.close() } }
        _ = try await holder.execute("BEGIN; LOCK TABLE busy IN SHARE MODE")
        let env = try Self.environment(db)
        var thresholds = MaintenancePlan.Thresholds()
        thresholds.freezeAge = 1
        thresholds.bloatMinimumBytes = 1 << 20
        let result = Self.object(try await MaintenanceJob().run(.init(database: "main", thresholds: thresholds, costDelayMs: 0, lockTimeoutMs: 50),
                                                                in: env, context: Self.context("maintenance")))
        _ = try await holder.execute("ROLLBACK")
        guard case .array(let ran)? = result["actions"], case .array(let skipped)? = result["skipped"] else { Issue.record("\(result)"); return }
        func text(_ v: JSONValue?) -> String { if case .string(let s)? = v { s } else { "" } }
        let done = ran.map { "\(text(Self.object($0)["kind"])) \(text(Self.object($0)["target"]))" }
        #expect(done.contains("freeze public.bloated") && done.contains("reindex public.bloated_pkey"), "\(done)")
        let passed = skipped.map { "\(text(Self.object($0)["kind"])) \(text(Self.object($0)["target"]))" }
        #expect(passed.contains("freeze public.busy") && passed.contains("reindex public.busy_pkey"), "\(passed)")
        #expect(skipped.allSatisfy { text(Self.object($0)["reason"]).contains("not granted") }, "\(skipped)")
        #expect(try await c.query("SELECT count(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname IN ('bloated', 'busy') AND NOT i.indisvalid").scalar == "0")
        #expect(try await c.query("SELECT count(*) FROM pg_class WHERE relname LIKE '%ccnew%'").scalar == "0")
    }

    @Test("preflight: a transaction open too long makes the run skip, naming it")
    func preflight() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let holder = try await Self.connect(db)
        defer { Task { await holder.close() } }
        _ = try await holder.execute("BEGIN; SELECT txid_current()")
        let pid = try await holder.query("SELECT pg_backend_pid()").scalar ?? "?"
        try await Task.sleep(for: .milliseconds(1200))
        let env = try Self.environment(db)
        let result = Self.object(try await MaintenanceJob().run(.init(database: "main", maxTransactionSeconds: 1, preflight: "skip"), in: env, context: Self.context("maintenance")))
        guard case .string(let skipped)? = result["skipped"] else { Issue.record("not skipped: \(result)"); return }
        #expect(skipped.contains("a transaction (pid \(pid)) has been open"))
        #expect(result["actions"] == .array([]))
        _ = try await holder.execute("ROLLBACK")
    }

    @Test("a bigint sequence feeding an int column is judged by the column's type (it fails at 2^31 - 1); MultiXact age is checked")
    func sequenceByColumnType() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE fed (id int, note text); CREATE SEQUENCE fed_id_seq AS bigint OWNED BY fed.id;
            ALTER TABLE fed ALTER COLUMN id SET DEFAULT nextval('fed_id_seq'); SELECT setval('fed_id_seq', 2040109466)
            """)
        let report = try await HealthJob.report(try PostgresConnectionString(Self.server.replacingDatabase(db)), database: "main",
                                                thresholds: HealthChecks.Thresholds(), logger: Self.logger)
        let sequences = try #require(report.checks.first { $0.name == "sequences" })
        #expect(sequences.status == .critical, "\(sequences)")
        #expect(sequences.value.contains("public.fed_id_seq (bigint sequence, integer column) at 95.0%"), "\(sequences.value)")
        let multixact = try #require(report.checks.first { $0.name == "multixact-wraparound" })
        #expect(multixact.status == .ok && multixact.value.contains("MultiXact ids left"), "\(multixact)")
    }

    @Test("health: an idle-in-transaction session, a blocked query and its blocker, an int4 sequence at 95%: critical (exit 2)")
    func health() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("CREATE TABLE t (id int); CREATE SEQUENCE small_seq AS integer; SELECT setval('small_seq', 2040109466)")
        let blocker = try await Self.connect(db)
        defer { Task { await blocker.close() } }
        _ = try await blocker.execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        let blockerPID = try await blocker.query("SELECT pg_backend_pid()").scalar ?? "?"
        let waiter = try await Self.connect(db)
        defer { Task { await waiter.close() } }
        let waiterPID = try await waiter.query("SELECT pg_backend_pid()").scalar ?? "?"
        let blocked = Task { try await waiter.query("SELECT count(*) FROM t") }
        try await Task.sleep(for: .milliseconds(1500))
        var thresholds = HealthChecks.Thresholds()
        thresholds.idleInTransactionWarning = 1
        thresholds.blockedWarning = 1
        let report = try await HealthJob.report(try PostgresConnectionString(Self.server.replacingDatabase(db)), database: "main", thresholds: thresholds, logger: Self.logger)
        func check(_ name: String) -> HealthCheck? { report.checks.first { $0.name == name } }
        #expect(report.critical)
        #expect(HealthChecks.exitCode(report.checks) == 2)
        #expect(check("sequences")?.status == .critical)
        #expect(check("sequences")?.value.contains("public.small_seq (integer) at 95.0%") == true, "\(String(describing: check("sequences")))")
        #expect(check("idle-in-transaction")?.status != .ok)
        // This database's sessions only (other suites' databases do not count): the blocker.
        #expect(check("idle-in-transaction")?.value.contains("1 session(s); the longest, pid \(blockerPID),") == true, "\(String(describing: check("idle-in-transaction")))")
        #expect(check("blocked-queries")?.status != .ok)
        #expect(check("blocked-queries")?.value.contains("pid \(waiterPID)") == true, "\(String(describing: check("blocked-queries")))")
        #expect(check("blocked-queries")?.value.contains("waits for pid \(blockerPID)") == true)
        _ = try await blocker.execute("ROLLBACK")
        _ = try await blocked.value
    }

    @Test("stats: samples kept in the storage; trends show a table's growth and a statement made slower between two samples")
    func statsTrends() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
            CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL, note text);
            INSERT INTO items SELECT i, 'c' || i, repeat('x', 50) FROM generate_series(1, 200000) i;
            CREATE INDEX items_code ON items (code); ANALYZE items;
            """)
        // A session's table counts reach pg_stat at most once a second: flush now, or a
        // sample taken at once (under a loaded machine) reads the counts from before.
        _ = try await c.query("SELECT pg_stat_force_next_flush()")
        for i in 0..<30 { _ = try await c.query("SELECT note FROM items WHERE code = $1", [PostgresParameter("c\(i * 7)")]) }
        let env = try Self.environment(db)
        _ = try await StatsJob().run(.init(database: "main"), in: env, context: Self.context("stats"))
        _ = try await c.execute("DROP INDEX items_code; INSERT INTO items SELECT i, 'c' || i, repeat('y', 50) FROM generate_series(200001, 260000) i")
        _ = try await c.query("SELECT pg_stat_force_next_flush()")
        for i in 0..<30 { _ = try await c.query("SELECT note FROM items WHERE code = $1", [PostgresParameter("c\(i * 7)")]) }
        _ = try await StatsJob().run(.init(database: "main"), in: env, context: Self.context("stats"))
        let (_, store) = try env.store(nil)
        let samples = try await StatsStore.load(database: "main", since: Date().addingTimeInterval(-3600), store: store)
        #expect(samples.count == 2)
        #expect(samples.last?.tables.first?.name == "public.items")
        #expect((samples.last?.statements.count ?? 0) > 0)
        let report = try #require(StatsTrends.compare(samples))
        #expect(report.growth.first?.table == "public.items")
        #expect((report.growth.first?.rowsAfter ?? 0) > (report.growth.first?.rowsBefore ?? 0))
        #expect(report.slower.contains { $0.query.contains("WHERE code = $1") }, "\(report.slower)")
    }
}
