import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
@testable import Indexes
import JobTestSupport
import Logging
import ObjectStorage
import PostgresClient
import Queue
import RedisClient
import RedisQueue
import Testing

/// Real PostgreSQL with pg_stat_statements and HypoPG: advice from a real workload, the
/// checks on real fixtures, concurrent builds that never leave an invalid index.
@Suite("Index advice and builds against real PostgreSQL", .serialized)
struct IndexRunTests {
    static let logger = Logger(label: "dbq.test.indexes")
    static var server: PostgresConnectionString { JobFixtures.server }

    static func makeDatabase() async throws -> String {
        let name = try await ScratchDatabase.create("dbqt_idx")
        let db = try await connect(name)
        _ = try await db.execute("""
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
            DO $$ BEGIN
              -- HypoPG where the server has it (the PostgreSQL 18 the tests also run on does not).
              IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') THEN CREATE EXTENSION IF NOT EXISTS hypopg; END IF;
            END $$;
            CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, country text NOT NULL);
            INSERT INTO customers SELECT i, 'c' || i || '@example.com', 'C' || (i % 50) FROM generate_series(1, 20000) i;
            CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, status text NOT NULL, total numeric NOT NULL,
                                 created_at timestamptz NOT NULL);
            INSERT INTO orders SELECT i, (i % 20000) + 1, CASE WHEN i % 10 = 0 THEN 'open' ELSE 'done' END, i % 1000,
                                      timestamptz '2026-01-01' + i * interval '1 minute' FROM generate_series(1, 60000) i;
            ANALYZE;
            """)
        await db.close()
        return name
    }

    static func connect(_ database: String) async throws -> PostgresConnection { try await JobFixtures.connect(database) }
    static func drop(_ name: String) async { await ScratchDatabase.drop(name) }

    static func environment(_ database: String) throws -> JobEnvironment { try JobFixtures.environment(main: database, logger: logger) }

    static func context(_ kind: String = "create-index") -> JobContext { JobFixtures.context(kind, logger: logger) }

    static func create(_ env: JobEnvironment, _ payload: CreateIndexJob.Payload) async throws -> [String: JSONValue] {
        guard case .object(let fields)? = try await CreateIndexJob().run(payload, in: env, context: context()) else { throw JobError.permanent("no result") }
        return fields
    }

    static func scalar(_ database: String, _ sql: String) async throws -> String? {
        let c = try await connect(database)
        defer { Task { await c.close() } }
        return try await c.query(sql).scalar
    }

    @Test("advice from a real workload: the filtered and joined columns with ≥ 50% savings and the exact statement; nothing for indexed columns; the catalog's checks")
    func advice() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE INDEX orders_status ON orders (status); CREATE INDEX orders_status_copy ON orders (status);
            CREATE INDEX orders_created ON orders (created_at); CREATE INDEX orders_created_status ON orders (created_at, status);
            CREATE TABLE notes (id int PRIMARY KEY, order_id bigint REFERENCES orders, body text);
            """)
        // An INVALID index, as a failed concurrent build leaves one.
        _ = try? await c.execute("CREATE UNIQUE INDEX CONCURRENTLY customers_country_key ON customers (country)")
        _ = try await c.query("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
        for i in 0..<30 {
            _ = try await c.query("SELECT id, total FROM orders WHERE customer_id = $1", [PostgresParameter(String(i + 1))])
            _ = try await c.query("SELECT o.id FROM orders o JOIN customers cu ON cu.id = o.customer_id WHERE cu.email = $1", [PostgresParameter("c\(i)@example.com")])
            _ = try await c.query("SELECT * FROM orders WHERE id = $1", [PostgresParameter(String(i + 1))])
        }
        let report = try await IndexAdvice.report(try PostgresConnectionString(Self.server.replacingDatabase(db)), database: "main",
                                                  options: WorkloadAdvisor.Options(), logger: Self.logger)
        #expect(report.notes.isEmpty, "\(report.notes)")
        let missing = report.findings.filter { $0.kind == .missing }
        #expect(Set(missing.map { "\($0.table)(\($0.columns ?? []))" }) == ["public.orders([\"customer_id\"])", "public.customers([\"email\"])"], "\(missing)")
        for finding in missing {
            #expect(!finding.heuristic)
            let (before, after) = (finding.costBefore ?? 0, finding.costAfter ?? 1e9)
            #expect(after <= before * 0.5, "\(finding.table): \(before) → \(after)")
            #expect((finding.estimatedBytes ?? 0) > 0)
            #expect(finding.sql?.hasPrefix("CREATE INDEX CONCURRENTLY") == true)
            #expect((finding.statements ?? []).allSatisfy { !$0.contains("WHERE id =") })
        }
        #expect(missing.first { $0.table == "public.orders" }?.sql == "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id)")
        // The checks, on the same database.
        #expect(report.findings.contains { $0.kind == .duplicate && $0.index == "public.orders_status_copy" || $0.index == "public.orders_status" && $0.kind == .duplicate })
        #expect(report.findings.contains { $0.kind == .redundant && $0.index == "public.orders_created" })
        #expect(report.findings.first { $0.kind == .invalid }?.index == "public.customers_country_key")
        #expect(report.findings.first { $0.kind == .invalid }?.priority == .high)
        #expect(Set(report.findings.filter { $0.kind == .unindexedForeignKey }.map(\.table)) == ["public.orders", "public.notes"])
        #expect(report.findings.filter { $0.kind == .unused }.allSatisfy { $0.priority == .low && $0.reason.hasPrefix("too early to tell") }, "a new database")
        #expect(!report.findings.contains { ($0.index ?? "").hasSuffix("_pkey") }, "a primary key's index is never proposed")

        // Without HypoPG: said so, and the candidates come labelled as guesses.
        _ = try await c.execute("DROP EXTENSION hypopg")
        let guessed = try await IndexAdvice.report(try PostgresConnectionString(Self.server.replacingDatabase(db)), database: "main",
                                                   options: WorkloadAdvisor.Options(), logger: Self.logger)
        #expect(guessed.notes.first?.contains("HypoPG is installed on the server but not in database 'main': CREATE EXTENSION hypopg") == true)
        #expect(guessed.findings.filter { $0.kind == .missing }.allSatisfy { $0.heuristic && $0.priority == .low })
        #expect(guessed.findings.contains { $0.kind == .missing && $0.table == "public.orders" })
    }

    @Test("a build: concurrently, valid, its size and duration; the plan check sees it used; --require-use fails when it is not")
    func buildAndCheck() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let result = try await Self.create(env, .init(database: "main", table: "orders", columns: ["customer_id"], check: "SELECT * FROM orders WHERE customer_id = 42"))
        #expect(result["outcome"] == .string("built"))
        #expect(result["checkUsesIndex"] == .bool(true), "\(result)")
        #expect(try await Self.scalar(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_customer_id_idx'::regclass") == "t")
        let again = try await Self.create(env, .init(database: "main", table: "orders", columns: ["customer_id"]))
        #expect(again["outcome"] == .string("exists"))
        let error = await #expect(throws: JobError.self) {
            _ = try await Self.create(env, .init(database: "main", table: "orders", columns: ["status"], check: "SELECT * FROM orders WHERE total > 5", requireUse: true))
        }
        #expect(error?.message.contains("does not use public.orders_status_idx") == true, "\(error?.message ?? "")")
        let missing = await #expect(throws: JobError.self) { _ = try await Self.create(env, .init(database: "main", table: "nope", columns: ["a"])) }
        #expect(missing?.message == "database 'main' has no table public.nope")
        // Drop refuses a constraint's index; reindex and drop work on a plain one.
        let refused = await #expect(throws: JobError.self) {
            _ = try await DropIndexJob().run(.init(database: "main", index: "orders_pkey"), in: env, context: Self.context("drop-index"))
        }
        #expect(refused?.message.contains("backs constraint orders_pkey") == true)
        _ = try await ReindexJob().run(.init(database: "main", index: "public.orders_customer_id_idx"), in: env, context: Self.context("reindex"))
        _ = try await DropIndexJob().run(.init(database: "main", index: "orders_customer_id_idx"), in: env, context: Self.context("drop-index"))
        #expect(try await Self.scalar(db, "SELECT to_regclass('orders_customer_id_idx') IS NULL") == "t")
    }

    @Test("a build waiting on a long transaction times out its lock, retries, and succeeds once the transaction ends")
    func waitsForTransaction() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let holder = try await Self.connect(db)
        defer { Task { await holder.close() } }
        _ = try await holder.execute("BEGIN; UPDATE orders SET total = total WHERE id = 1")
        let build = Task { try await Self.create(env, .init(database: "main", table: "orders", columns: ["created_at"], lockTimeoutMs: 300)) }
        try await Task.sleep(for: .milliseconds(1500))
        _ = try await holder.execute("COMMIT")
        let result = try await build.value
        guard case .number(let waits)? = result["lockWaits"] else { Issue.record("no lockWaits"); return }
        #expect(waits >= 1)
        #expect(try await Self.scalar(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_created_at_idx'::regclass") == "t")
        #expect(try await Self.scalar(db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "0", "no attempt left an INVALID index")
    }

    @Test("a unique build failing on duplicates leaves no INVALID index; an INVALID index of the requested name is rebuilt, not skipped")
    func uniqueViolation() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let error = await #expect(throws: JobError.self) {
            _ = try await Self.create(env, .init(database: "main", table: "customers", columns: ["country"], unique: true, name: "customers_country_key"))
        }
        #expect(error?.isRetryable == false)
        #expect(error?.message.contains("could not create unique index") == true, "\(error?.message ?? "")")
        #expect(try await Self.scalar(db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "0")

        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        // What a failed build by hand (or by another tool) leaves: an INVALID index of the name.
        _ = try await c.execute("UPDATE customers SET email = 'dup@example.com' WHERE id IN (1, 3)")
        _ = try? await c.execute("CREATE UNIQUE INDEX CONCURRENTLY customers_email_key ON customers (email)")
        #expect(try await Self.scalar(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'customers_email_key'::regclass") == "f")
        _ = try await c.execute("UPDATE customers SET email = 'c3@example.com' WHERE id = 3")
        let result = try await Self.create(env, .init(database: "main", sql: "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS customers_email_key ON customers (email)"))
        #expect(result["outcome"] == .string("built"))
        #expect(try await Self.scalar(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'customers_email_key'::regclass") == "t")
    }

    @Test("advice for a range over a parameter: 300,000 rows read 60 times by created_at > now() - interval 'N minutes' get an index on created_at, costed at a stated value (the generic plan alone saw none); a table loaded seconds ago has no write rate yet")
    func adviceAtRepresentativeValues() async throws {
        let db = try await ScratchDatabase.create("dbqt_idxrange")
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE EXTENSION IF NOT EXISTS hypopg;
            CREATE TABLE ev (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, kind int NOT NULL, body text);
            INSERT INTO ev SELECT i, now() - i * interval '1 second', i % 1000, md5(i::text) FROM generate_series(1, 300000) i;
            ANALYZE ev;
            """)
        _ = try await c.query("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
        for i in 0..<60 {
            _ = try await c.execute("SELECT id, body FROM ev WHERE created_at > now() - interval '\(2 + i % 5) minutes'")
            _ = try await c.execute("SELECT id, body FROM ev WHERE kind = \(i)")
        }
        let report = try await IndexAdvice.report(try PostgresConnectionString(Self.server.replacingDatabase(db)), database: "main",
                                                  options: WorkloadAdvisor.Options(), logger: Self.logger)
        let missing = report.findings.filter { $0.kind == .missing }
        #expect(Set(missing.compactMap(\.columns)) == [["created_at"], ["kind"]], "\(missing)")
        let range = try #require(missing.first { $0.columns == ["created_at"] })
        #expect(range.reason.contains("at $1 = '1 minute'") || range.reason.contains("at $1 = '1 hour'"), "\(range.reason)")
        #expect(range.statements?.first?.contains("interval $1") == true, "the statement as pg_stat_statements has it")
        #expect(missing.allSatisfy { $0.writesPerSecond == nil && $0.reason.contains("write rate is too early to tell") }, "\(missing.map(\.reason))")
    }

    @Test("operator classes, collations and keywords on a real server: a text_pattern_ops or COLLATE \"C\" index is not a plain one's duplicate; columns named order and user build, and the advice's statements run")
    func opclassesAndKeywords() async throws {
        let db = try await ScratchDatabase.create("dbqt_idxkw")
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);
            CREATE TABLE "select" (id bigint PRIMARY KEY, "order" int NOT NULL, "user" bigint REFERENCES accounts, email text NOT NULL, "Note" text);
            INSERT INTO accounts SELECT i, 'a' || i FROM generate_series(1, 100) i;
            INSERT INTO "select" SELECT i, i % 97, i % 100 + 1, 'e' || i, 'n' FROM generate_series(1, 2000) i;
            CREATE INDEX sel_email ON "select" (email);
            CREATE INDEX sel_email_pattern ON "select" (email text_pattern_ops);
            CREATE INDEX sel_email_pattern_copy ON "select" (email text_pattern_ops);
            CREATE INDEX sel_email_c ON "select" (email COLLATE "C", id);
            CREATE INDEX sel_email_desc ON "select" (email DESC NULLS LAST, id);
            ANALYZE;
            """)
        let catalog = try await IndexCatalogQuery.load(c)
        #expect(catalog.indexes.first { $0.name == "sel_email_pattern" }?.keys == ["email text_pattern_ops"])
        #expect(catalog.indexes.first { $0.name == "sel_email_c" }?.keys == [#"email COLLATE "C""#, "id"])
        let found = IndexChecks.findings(catalog)
        let doubled = found.filter { $0.kind == .duplicate || $0.kind == .redundant }
        #expect(doubled.count == 1 && doubled.allSatisfy { ["public.sel_email_pattern", "public.sel_email_pattern_copy"].contains($0.index ?? "") }, "\(doubled)")
        // The foreign key on "user" has no index: the statement proposed for it runs as printed.
        let fk = try #require(found.first { $0.kind == .unindexedForeignKey && $0.table == "public.select" })
        _ = try await c.execute(try #require(fk.sql))
        #expect(IndexChecks.findings(try await IndexCatalogQuery.load(c)).filter { $0.kind == .unindexedForeignKey }.isEmpty)
        // create-index with keyword and mixed-case columns.
        let built = try await Self.create(env, .init(database: "main", table: "select", columns: ["order", "Note"]))
        #expect(built["outcome"] == .string("built"), "\(built)")
        #expect(try await c.query(#"SELECT pg_get_indexdef('select_order_note_idx'::regclass)"#).scalar?.hasSuffix(#"USING btree ("order", "Note")"#) == true)
    }

    @Test("a partitioned table: each partition concurrently, the parent ON ONLY, all attached and valid")
    func partitioned() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE events (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
            CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
            CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
            CREATE TABLE events_2026_03 PARTITION OF events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
            INSERT INTO events SELECT i, date '2026-01-01' + i % 90, 'k' || i % 7 FROM generate_series(1, 9000) i;
            """)
        let result = try await Self.create(env, .init(database: "main", table: "events", columns: ["kind", "at"], check: "SELECT * FROM events WHERE kind = 'k3' AND at = '2026-02-10'"))
        #expect(result["outcome"] == .string("built"))
        #expect(try await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind_at_idx'::regclass").scalar == "t")
        #expect(try await c.query("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events_kind_at_idx'::regclass").scalar == "3")
        #expect(try await c.query("SELECT count(*) FROM pg_index WHERE NOT indisvalid").scalar == "0")
        #expect(result["checkUsesIndex"] == .bool(true), "\(result)")
    }
}

extension IndexRunTests {
    @Test("a partitioned table's build stopped while attaching (the parent's index ON ONLY and INVALID, one partition's attached, one built but not attached, one missing): the next build completes it; the parent's index is valid")
    func partitionedResumed() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE events (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
            CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
            CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
            CREATE TABLE events_2026_03 PARTITION OF events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
            INSERT INTO events SELECT i, date '2026-01-01' + i % 90, 'k' || i % 7 FROM generate_series(1, 9000) i;
            CREATE INDEX events_kind_at_idx_events_2026_01 ON events_2026_01 USING btree (kind, at);
            CREATE INDEX events_kind_at_idx_events_2026_02 ON events_2026_02 USING btree (kind, at);
            CREATE INDEX events_kind_at_idx ON ONLY events USING btree (kind, at);
            ALTER INDEX events_kind_at_idx ATTACH PARTITION events_kind_at_idx_events_2026_01;
            """)
        #expect(try await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind_at_idx'::regclass").scalar == "f")
        let result = try await Self.create(env, .init(database: "main", table: "events", columns: ["kind", "at"]))
        #expect(result["outcome"] == .string("built"), "\(result)")
        #expect(try await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind_at_idx'::regclass").scalar == "t")
        #expect(try await c.query("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events_kind_at_idx'::regclass").scalar == "3")
        #expect(try await c.query("SELECT count(*) FROM pg_index WHERE NOT indisvalid").scalar == "0")
        #expect(try await c.query("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'events_2026_0%'").scalar == "3", "one index per partition, none built twice")
    }
}

/// A real worker killed while its build waits: the retry drops the leftover and completes.
@Suite("Index builds under faults: SIGKILL mid-build (real worker, real PostgreSQL and Redis)", .serialized)
struct IndexFaultTests {
    typealias T = IndexRunTests

    @Test("a worker SIGKILLed while attaching a partitioned table's index leaves the parent's index INVALID; the retry completes it (it cannot be dropped concurrently)")
    func killedWhileAttaching() async throws {
        let db = try await T.makeDatabase()
        defer { Task { await T.drop(db) } }
        let setup = try await T.connect(db)
        _ = try await setup.execute("""
            CREATE TABLE events (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
            CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
            CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
            CREATE TABLE events_2026_03 PARTITION OF events FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
            INSERT INTO events SELECT i, date '2026-01-01' + i % 90, 'k' || i % 7 FROM generate_series(1, 9000) i;
            ANALYZE events;
            CREATE INDEX \(IndexBuildPlan.partitionIndexName("events_kind_at_idx", partition: "events_2026_03")) ON events_2026_03 USING btree (kind, at);
            """)
        await setup.close()
        // The application reads the last partition through its index in an open
        // transaction: attaching that index (ACCESS EXCLUSIVE on it) waits behind it.
        let holder = try await T.connect(db)
        _ = try await holder.execute("BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
        // The simple protocol: an extended-protocol portal would keep its snapshot (and hold
        // back the partitions' concurrent builds) until the next statement.
        _ = try await holder.execute("SELECT count(*) FROM events_2026_03 WHERE kind = 'k1'")
        let config = TestServices.temporaryDirectory("dbq-config") + "/dbq.yaml"
        try "databases:\n  main: \"\(T.server.replacingDatabase(db))\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let queueName = "index-attach-\(UUID().uuidString.prefix(8).lowercased())"
        let driver = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: T.logger)
        let env = ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info"]
        let workerArguments = ["worker", "--config", config, "--queues", queueName, "--lease", "10s", "--rescue-interval", "1s", "--idle-wait", "500ms"]
        let a = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "A"], environment: env)
        let payload = try JSONValue(json: String(decoding: try JSONEncoder().encode(
            CreateIndexJob.Payload(database: "main", table: "events", columns: ["kind", "at"], lockTimeoutMs: 60_000)), as: UTF8.self))
        let pushed = try await driver.push(JobEnvelope(kind: "create-index", version: 1, payload: payload, queue: queueName, maxAttempts: 3))
        let observer = try await T.connect(db)
        defer { Task { await observer.close() } }
        let waiting = try await polled(.seconds(90), every: .milliseconds(200), {
            try await observer.query("""
                SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbq create-index' AND wait_event_type = 'Lock' AND query LIKE 'ALTER INDEX%ATTACH PARTITION%'
                """).scalar.flatMap { Int($0) } ?? 0
        }, until: { $0 != 0 })
        #expect(waiting == 1, "worker A never reached the attach: \(a.stderr.suffix(3000))")
        a.signal(SIGKILL)
        _ = await a.wait(timeout: .seconds(30))
        let gone = try await polled(.seconds(30), every: .milliseconds(200), {
            try await observer.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbq create-index'").scalar
        }, until: { $0 == "0" })
        #expect(gone == "0")
        #expect(try await observer.query("SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass('events_kind_at_idx')").scalar == "false",
                "the killed build left the parent's index INVALID")
        _ = try await holder.execute("COMMIT")
        await holder.close()

        let b = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "B"], environment: env)
        defer { b.signal(SIGTERM) }
        let record = try await polled(.seconds(120), { try await driver.job(pushed.id, queue: queueName) }, until: { ["succeeded", "dead"].contains($0?.state ?? "") })
        #expect(record?.state == "succeeded", "job: \(String(describing: record)); B: \(b.stderr.suffix(3000))")
        #expect(record?.attempt == 2 && record?.worker == "B")
        #expect(try await observer.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind_at_idx'::regclass").scalar == "t")
        #expect(try await observer.query("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events_kind_at_idx'::regclass").scalar == "3")
        #expect(try await observer.query("SELECT count(*) FROM pg_index WHERE NOT indisvalid").scalar == "0")
    }

    @Test("a worker SIGKILLed mid-build leaves an INVALID index; the retry drops it and builds a valid one")
    func killedMidBuild() async throws {
        let db = try await T.makeDatabase()
        defer { Task { await T.drop(db) } }
        let config = TestServices.temporaryDirectory("dbq-config") + "/dbq.yaml"
        try "databases:\n  main: \"\(T.server.replacingDatabase(db))\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let queueName = "index-kill-\(UUID().uuidString.prefix(8).lowercased())"
        let driver = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: T.logger)
        let env = ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info"]
        let workerArguments = ["worker", "--config", config, "--queues", queueName, "--lease", "10s", "--rescue-interval", "1s", "--idle-wait", "500ms"]
        let holder = try await T.connect(db)
        _ = try await holder.execute("BEGIN; UPDATE orders SET total = total WHERE id = 1")
        let a = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "A"], environment: env)
        let payload = try JSONValue(json: String(decoding: try JSONEncoder().encode(CreateIndexJob.Payload(database: "main", table: "orders", columns: ["status"], lockTimeoutMs: 60_000)), as: UTF8.self))
        let pushed = try await driver.push(JobEnvelope(kind: "create-index", version: 1, payload: payload, queue: queueName, maxAttempts: 3))
        let observer = try await T.connect(db)
        defer { Task { await observer.close() } }
        // Waiting in the build's second phase (after the INVALID index was committed), not
        // on a lock of its first phase (an autovacuum of the new table can hold one briefly):
        // only then does a kill leave an INVALID index behind.
        let waiting = try await polled(.seconds(90), every: .milliseconds(200), {
            try await observer.query("""
                    SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
                     WHERE a.application_name = 'dbq create-index' AND a.wait_event_type = 'Lock'
                       AND p.phase = 'waiting for writers before build' AND to_regclass('orders_status_idx') IS NOT NULL
                    """).scalar.flatMap { Int($0) } ?? 0
        }, until: { $0 != 0 })
        #expect(waiting == 1, "worker A never reached the wait: \(a.stderr.suffix(3000))")
        a.signal(SIGKILL)
        _ = await a.wait(timeout: .seconds(30))
        // The server notices the client is gone (client_connection_check_interval) and stops the build.
        let (left, _) = try await polled(.seconds(30), every: .milliseconds(200), {
            (try await observer.query("SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass('orders_status_idx')").scalar,
             try await observer.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbq create-index'").scalar)
        }, until: { $0.1 == "0" })
        #expect(left == "false", "the killed build left an INVALID index")
        _ = try await holder.execute("ROLLBACK")
        await holder.close()

        let b = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "B"], environment: env)
        defer { b.signal(SIGTERM) }
        let record = try await polled(.seconds(120), { try await driver.job(pushed.id, queue: queueName) }, until: { ["succeeded", "dead"].contains($0?.state ?? "") })
        #expect(record?.state == "succeeded", "job: \(String(describing: record)); B: \(b.stderr.suffix(3000))")
        #expect(record?.attempt == 2 && record?.worker == "B")
        #expect(try await observer.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_status_idx'::regclass").scalar == "t")
        #expect(try await observer.query("SELECT count(*) FROM pg_index WHERE NOT indisvalid").scalar == "0")
    }
}
