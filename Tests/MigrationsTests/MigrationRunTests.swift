import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import Logging
@testable import Migrations
import ObjectStorage
import PostgresClient
import Queue
import RedisClient
import RedisQueue
import Snapshots
import Testing

/// Real PostgreSQL: migrations applied once, locked, waiting politely, cleaning up after
/// a failed concurrent index, reverted; a worker killed mid-migration.
@Suite("Migrations against real PostgreSQL", .serialized)
struct MigrationRunTests {
    static let logger = Logger(label: "dbq.test.migrations")
    static var server: PostgresConnectionString { JobFixtures.server }

    static func makeDatabase() async throws -> String {
        let name = try await ScratchDatabase.create("dbqt_migr")
        let db = try await connect(name)
        _ = try await db.execute("""
            CREATE TABLE users (id bigserial PRIMARY KEY, email text, name text);
            INSERT INTO users (email, name) SELECT 'u' || i || '@example.com', 'User ' || i FROM generate_series(1, 2000) i;
            CREATE TABLE gate (id int);
            """)
        await db.close()
        return name
    }

    static func connect(_ database: String) async throws -> PostgresConnection { try await JobFixtures.connect(database) }
    static func drop(_ name: String) async { await ScratchDatabase.drop(name) }

    static func environment(_ database: String, locks: any ResourceLocks = MemoryLocks()) throws -> JobEnvironment {
        try JobFixtures.environment(main: database, storage: JobFixtures.localStorage("dbq-migrations"), locks: locks, logger: logger)
    }

    static func context() -> JobContext { JobFixtures.context("migrate", logger: logger) }

    static func migrate(_ env: JobEnvironment, _ payload: MigrateJob.Payload) async throws -> [String: JSONValue] {
        guard case .object(let fields)? = try await MigrateJob().run(payload, in: env, context: context()) else { throw JobError.permanent("no result") }
        return fields
    }

    static func scalar(_ database: String, _ sql: String) async throws -> String? {
        let c = try await connect(database)
        defer { Task { await c.close() } }
        return try await c.query(sql).scalar
    }

    static let files = [
        MigrationFile(version: "0001", name: "orders", up: """
            CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL, total numeric(10,2) NOT NULL);
            INSERT INTO orders (user_id, total) SELECT id, id * 1.5 FROM users;
            """, down: "DROP TABLE orders; -- dbq:allow drop-table"),
        MigrationFile(version: "0002", name: "orders_fk", up: """
            ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
            ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;
            """, down: "ALTER TABLE orders DROP CONSTRAINT orders_user_fk;"),
        MigrationFile(version: "0003", name: "users_email_index", up: """
            SET lock_timeout = '2s';
            CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email);
            """, down: "DROP INDEX CONCURRENTLY users_email;"),
    ]

    @Test("apply in order, each once: the tracking table records version, checksum, job and mode; a second run applies nothing; revert runs down files newest first")
    func applyOnceAndRevert() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let dry = try await Self.migrate(env, .init(database: "main", files: Self.files, dryRun: true))
        guard case .array(let plan)? = dry["plan"] else { Issue.record("no plan"); return }
        #expect(plan.count == 3)
        #expect(try await Self.scalar(db, "SELECT to_regclass('orders') IS NULL") == "t", "a dry run changes nothing")

        let first = try await Self.migrate(env, .init(database: "main", files: Self.files))
        #expect(first["version"] == .string("0003"))
        #expect(try await Self.scalar(db, "SELECT count(*) FROM orders") == "2000")
        #expect(try await Self.scalar(db, "SELECT string_agg(version || ':' || transactional || ':' || state || ':' || (checksum = '\(Self.files[0].checksum)'), ',' ORDER BY version) FROM dbq_migrations")
            == "0001:true:applied:true,0002:true:applied:false,0003:false:applied:false")
        #expect(try await Self.scalar(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass") == "t")

        let again = try await Self.migrate(env, .init(database: "main", files: Self.files))
        #expect(again["applied"] == .array([]))
        #expect(try await Self.scalar(db, "SELECT count(*) FROM orders") == "2000")

        guard case .object(let reverted)? = try await MigrateRevertJob().run(.init(database: "main", files: Self.files, steps: 2), in: env, context: Self.context()) else {
            Issue.record("no revert result"); return
        }
        #expect(reverted["version"] == .string("0001"))
        #expect(try await Self.scalar(db, "SELECT to_regclass('users_email') IS NULL AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_user_fk')") == "t")
        #expect(try await Self.scalar(db, "SELECT string_agg(version, ',') FROM dbq_migrations") == "0001")

        // Changed after it was applied: refused by name, nothing applied.
        var drifted = Self.files
        drifted[0].up += "\n-- tidied up"
        let error = await #expect(throws: JobError.self) { _ = try await Self.migrate(env, .init(database: "main", files: drifted)) }
        #expect(error?.message.contains("0001_orders.up.sql changed after it was applied") == true)
        #expect(try await Self.scalar(db, "SELECT count(*) FROM dbq_migrations") == "1")

        // No down file: cannot be reverted, and says so.
        var noDown = Self.files
        noDown[0].down = nil
        let refused = await #expect(throws: JobError.self) {
            _ = try await MigrateRevertJob().run(.init(database: "main", files: noDown), in: env, context: Self.context())
        }
        #expect(refused?.message.contains("0001_orders has no down file (0001_orders.down.sql): it cannot be reverted") == true)
    }

    @Test("a dangerous statement refuses the run, naming file:line and rule, nothing applied; --allow lets it through")
    func lintRefuses() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let files = [MigrationFile(version: "0001", name: "email_index", up: "CREATE TABLE x (id int);\nCREATE INDEX users_name ON users (name);")]
        let error = await #expect(throws: JobError.self) { _ = try await Self.migrate(env, .init(database: "main", files: files)) }
        #expect(error?.message.contains("0001_email_index.up.sql:2: create-index-without-concurrently (danger): CREATE INDEX users_name ON public.users") == true)
        #expect(try await Self.scalar(db, "SELECT to_regclass('x') IS NULL") == "t")
        _ = try await Self.migrate(env, .init(database: "main", files: files, allow: ["create-index-without-concurrently"]))
        #expect(try await Self.scalar(db, "SELECT to_regclass('users_name') IS NOT NULL") == "t")
    }

    @Test("volatile defaults by the database's catalog: a user function declared VOLATILE (qualified or not) is flagged, a STABLE one is not")
    func volatileByCatalog() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE SCHEMA app;
            CREATE FUNCTION app.new_token() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT md5(random()::text) $$;
            CREATE FUNCTION app.region() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'eu' $$;
            """)
        let files = [MigrationFile(version: "0001", name: "columns", up: """
            SET lock_timeout = '2s';
            ALTER TABLE users ADD COLUMN region text DEFAULT app.region();
            ALTER TABLE users ADD COLUMN token text DEFAULT app.new_token();
            SET search_path = app, public;
            ALTER TABLE users ADD COLUMN token2 text DEFAULT new_token();
            """)]
        let error = await #expect(throws: JobError.self) { _ = try await Self.migrate(env, .init(database: "main", files: files)) }
        let message = error?.message ?? ""
        #expect(message.contains("0001_columns.up.sql:3: volatile-default (danger): ALTER TABLE public.users ADD COLUMN token … DEFAULT new_token()"), "\(message)")
        #expect(message.contains("0001_columns.up.sql:5: volatile-default"), "\(message)")
        #expect(!message.contains("ADD COLUMN region"), "a STABLE default is computed once: \(message)")
        #expect(try await Self.scalar(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name IN ('region', 'token')") == "0")
    }

    @Test("a non-transactional file resumed after a stop between a statement and its progress row: a statement that can run in a transaction commits with its row (a failing row write undoes it); a concurrent index already built, an index already dropped and a detach left pending are not done again")
    func resumeBetweenStatementAndProgress() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        // 1. The progress row's write fails right after statement 2 (an INSERT) ran.
        let file = MigrationFile(version: "0001", name: "gate_rows", up: """
            SET lock_timeout = '2s';
            INSERT INTO gate VALUES (1);
            CREATE INDEX CONCURRENTLY gate_id ON gate (id);
            """)
        try await MigrationRunner.ensureTable(c)
        _ = try await c.execute("""
            CREATE FUNCTION fail_progress() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN IF NEW.statements_done = 2 THEN RAISE EXCEPTION 'progress write refused'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER fail_progress BEFORE UPDATE ON \(MigrationRunner.table) FOR EACH ROW EXECUTE FUNCTION fail_progress();
            """)
        await #expect(throws: (any Error).self) { _ = try await Self.migrate(env, .init(database: "main", files: [file])) }
        #expect(try await c.query("SELECT count(*) FROM gate").scalar == "0", "the INSERT must not outlive its progress row")
        _ = try await c.execute("DROP TRIGGER fail_progress ON \(MigrationRunner.table)")
        _ = try await Self.migrate(env, .init(database: "main", files: [file]))
        #expect(try await c.query("SELECT count(*) FROM gate").scalar == "1", "the resumed run inserts once")

        // 2. A stop after each of these statements took effect, before its row was written:
        // the row says the statement is still to do.
        _ = try await c.execute("""
            CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
            CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
            CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
            CREATE INDEX users_name_old ON users (name);
            """)
        let steps = [
            ("0002", "index", "CREATE INDEX CONCURRENTLY users_name ON users (name);\nSELECT 1;", "CREATE INDEX CONCURRENTLY users_name ON users (name)"),
            ("0003", "drop_index", "DROP INDEX CONCURRENTLY users_name_old;\nSELECT 1;", "DROP INDEX CONCURRENTLY users_name_old"),
            ("0004", "detach", "ALTER TABLE events DETACH PARTITION events_2026_01 CONCURRENTLY;\nSELECT 1;", nil),
        ]
        var files = [file]
        for (version, name, up, effect) in steps {
            let f = MigrationFile(version: version, name: name, up: up)
            files.append(f)
            _ = try await c.query("INSERT INTO \(MigrationRunner.table) (version, name, checksum, job_id, transactional, state, statements_done) VALUES ($1, $2, $3, 'killed', false, 'partial', 0)",
                                  [PostgresParameter(version), PostgresParameter(name), PostgresParameter(f.checksum)])
            if let effect { _ = try await c.execute(effect) }
        }
        // The detach: its second phase waits for a transaction that still sees the partition,
        // and is cancelled there, as a killed worker's statement is: the partition stays pending.
        let reader = try await Self.connect(db)
        _ = try await reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM events")
        let detacher = try await Self.connect(db)
        let detach = Task { try await detacher.execute("ALTER TABLE events DETACH PARTITION events_2026_01 CONCURRENTLY") }
        let waiting = try await polled(.seconds(30), every: .milliseconds(100), {
            try await c.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE events DETACH%' AND wait_event_type = 'Lock'").scalar
        }, until: { $0 == "1" })
        #expect(waiting == "1")
        _ = try await c.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE events DETACH%' AND pid <> pg_backend_pid()")
        _ = try? await detach.value
        _ = try await reader.execute("COMMIT")
        await reader.close()
        await detacher.close()
        #expect(try await c.query("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'events_2026_01'::regclass").scalar == "t")

        let result = try await Self.migrate(env, .init(database: "main", files: files))
        #expect(result["version"] == .string("0004"), "\(result)")
        #expect(try await c.query("SELECT count(*) FROM pg_index WHERE indexrelid = 'users_name'::regclass AND indisvalid").scalar == "1")
        #expect(try await c.query("SELECT count(*) FROM pg_indexes WHERE tablename = 'users' AND indexdef LIKE '%(name)%'").scalar == "1", "one index on users(name), not two")
        #expect(try await c.query("SELECT to_regclass('users_name_old') IS NULL").scalar == "t")
        #expect(try await c.query("SELECT count(*) FROM pg_inherits WHERE inhrelid = 'events_2026_01'::regclass").scalar == "0", "the pending detach was finished")
        #expect(try await c.query("SELECT count(*) FROM \(MigrationRunner.table) WHERE state <> 'applied'").scalar == "0")
    }

    @Test("two runs at once (separate queues, so only PostgreSQL's lock between them): applied once")
    func concurrentRuns() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let a = try Self.environment(db)
        let b = try Self.environment(db)
        async let first = Self.migrate(a, .init(database: "main", files: Self.files))
        async let second = Self.migrate(b, .init(database: "main", files: Self.files))
        let results = try await [first, second]
        let applied = results.map { if case .array(let list)? = $0["applied"] { list.count } else { -1 } }.sorted()
        #expect(applied == [0, 3])
        #expect(try await Self.scalar(db, "SELECT count(*) FROM orders") == "2000")
        #expect(try await Self.scalar(db, "SELECT count(*) FROM dbq_migrations") == "3")
    }

    @Test("a session holding a lock: the migration waits its lock_timeout, retries, succeeds once the lock goes; other sessions are not queued behind it meanwhile")
    func lockTimeoutRetry() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let holder = try await Self.connect(db)
        defer { Task { await holder.close() } }
        _ = try await holder.execute("BEGIN; SELECT count(*) FROM users")
        let files = [MigrationFile(version: "0001", name: "add_column", up: "ALTER TABLE users ADD COLUMN nickname text;")]
        let run = Task { try await Self.migrate(env, .init(database: "main", files: files, lockTimeoutMs: 200)) }
        try await Task.sleep(for: .milliseconds(400))
        let reader = try await Self.connect(db)
        defer { Task { await reader.close() } }
        for _ in 0..<5 {
            #expect(try await reader.query("SELECT count(*) FROM users").scalar == "2000")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await Self.scalar(db, "SELECT count(*) FROM dbq_migrations") == "0", "not applied while the lock is held")
        _ = try await holder.execute("COMMIT")
        let result = try await run.value
        guard case .number(let waits)? = result["lockWaits"] else { Issue.record("no lockWaits"); return }
        #expect(waits >= 1)
        #expect(try await Self.scalar(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'") == "1")
    }

    @Test("a CREATE UNIQUE INDEX CONCURRENTLY that fails on duplicates leaves no INVALID index; the file stays partial; after the data is fixed the next run finishes it")
    func failedConcurrentIndex() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("UPDATE users SET email = 'same@example.com' WHERE id IN (5, 6)")
        let file = MigrationFile(version: "0001", name: "unique_email", up: """
            SET lock_timeout = '2s';
            CREATE TABLE audit (id int);
            CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);
            INSERT INTO audit VALUES (1);
            """)
        let error = await #expect(throws: JobError.self) { _ = try await Self.migrate(env, .init(database: "main", files: [file])) }
        #expect(error?.isRetryable == false)
        #expect(error?.message.contains("0001_unique_email.up.sql:3: could not create unique index \"users_email\"") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("The invalid index the failed build left was dropped") == true)
        #expect(try await c.query("SELECT count(*) FROM pg_index WHERE NOT indisvalid").scalar == "0")
        #expect(try await c.query("SELECT state || ':' || statements_done FROM dbq_migrations").scalar == "partial:2")

        _ = try await c.execute("UPDATE users SET email = 'fixed@example.com' WHERE id = 6")
        _ = try await Self.migrate(env, .init(database: "main", files: [file]))
        #expect(try await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass").scalar == "t")
        #expect(try await c.query("SELECT state || ':' || statements_done FROM dbq_migrations").scalar == "applied:4")
        #expect(try await c.query("SELECT count(*) FROM audit").scalar == "1", "the statements before the failure ran once")

        // An INVALID index a killed run left under the same name is dropped, not skipped by IF NOT EXISTS.
        _ = try await c.execute("DROP INDEX users_email; UPDATE users SET email = 'same@example.com' WHERE id = 6")
        _ = try? await c.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email2 ON users (email)")
        _ = try await c.execute("UPDATE users SET email = 'fixed@example.com' WHERE id = 6; ALTER INDEX users_email2 RENAME TO users_email")
        #expect(try await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass").scalar == "f")
        let again = MigrationFile(version: "0002", name: "unique_email_again", up: "SET lock_timeout = '2s';\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);")
        _ = try await Self.migrate(env, .init(database: "main", files: [file, again]))
        #expect(try await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass").scalar == "t")
    }

    @Test("--snapshot snapshots the tables the migration changes first and names the snapshot; rolling back to it restores the rows")
    func snapshotFirst() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let files = [MigrationFile(version: "0001", name: "purge", up: "DELETE FROM users WHERE id > 100;\nUPDATE users SET name = upper(name) WHERE id <= 100;")]
        let result = try await Self.migrate(env, .init(database: "main", files: files, snapshot: true))
        guard case .string(let id)? = result["snapshot"] else { Issue.record("no snapshot in \(result)"); return }
        #expect(try await Self.scalar(db, "SELECT count(*) FROM users") == "100")
        let (_, store) = try env.store(nil)
        let entry = try await SnapshotCatalog.load(store).find(id)
        #expect(entry.manifest.tables.map(\.qualifiedName) == ["public.users"])
        #expect(entry.manifest.label == "before migrating to 0001_purge")
        // The shape moved on (the tracking table is not one of the snapshot's tables): rollback works.
        _ = try await RollbackJob().run(.init(database: "main", snapshot: id, confirm: true), in: env, context: Self.context())
        #expect(try await Self.scalar(db, "SELECT count(*) || ':' || max(name) FROM users") == "2000:User 999")
    }
}

extension MigrationRunTests {
    @Test("validate-integrity: rows breaking a NOT VALID foreign key and check, and a pending migration's NOT NULL and UNIQUE, counted with samples; read-only")
    func validateIntegrity() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, user_id bigint, total numeric);
            INSERT INTO orders SELECT i, CASE WHEN i % 100 = 0 THEN 900000 + i ELSE i END, CASE WHEN i % 250 = 0 THEN -1 ELSE i END FROM generate_series(1, 1000) i;
            ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
            ALTER TABLE orders ADD CONSTRAINT orders_positive CHECK (total >= 0) NOT VALID;
            UPDATE users SET email = NULL WHERE id IN (3, 4);
            UPDATE users SET name = 'Twin' WHERE id IN (7, 8, 9);
            """)
        let files = [
            MigrationFile(version: "0001", name: "tighten", up: """
                ALTER TABLE users ALTER COLUMN email SET NOT NULL; -- dbq:allow set-not-null
                CREATE UNIQUE INDEX CONCURRENTLY users_name ON users (name);
                CREATE TABLE fresh (id int);
                CREATE UNIQUE INDEX fresh_id ON fresh (id);
                """),
        ]
        #expect(try ValidateIntegrityJob.pendingConstraints(files).map { "\($0.kind) \($0.table) \($0.columns) \($0.source)" } == [
            "not-null users [\"email\"] 0001_tighten.up.sql:1", "unique users [\"name\"] 0001_tighten.up.sql:2",
        ])
        let before = try await c.query("SELECT count(*) FROM users WHERE email IS NULL").scalar
        guard case .object(let result)? = try await ValidateIntegrityJob().run(.init(database: "main", files: files, samples: 3), in: env, context: Self.context()),
              case .array(let violations)? = result["violations"] else { Issue.record("no result"); return }
        #expect(result["clean"] == .bool(false))
        func find(_ kind: String) -> [String: JSONValue]? {
            violations.compactMap { if case .object(let o) = $0, o["kind"] == .string(kind) { o } else { nil } }.first
        }
        #expect(find("foreign-key")?["rows"] == .number(10))
        #expect(find("foreign-key")?["source"] == .string("orders_user_fk (NOT VALID)"))
        #expect(find("foreign-key")?["samples"] == .array(["900100", "900200", "900300"].map(JSONValue.string)))
        #expect(find("check")?["rows"] == .number(4))
        #expect(find("not-null")?["rows"] == .number(2))
        #expect(find("unique")?["rows"] == .number(1))
        #expect(find("unique")?["samples"] == .array([.string("Twin ×3")]))
        #expect(try await c.query("SELECT count(*) FROM users WHERE email IS NULL").scalar == before, "read-only")

        _ = try await c.execute("DELETE FROM orders WHERE user_id > 900000 OR total < 0; UPDATE users SET email = 'x' || id WHERE email IS NULL; UPDATE users SET name = 'N' || id WHERE name = 'Twin'")
        guard case .object(let clean)? = try await ValidateIntegrityJob().run(.init(database: "main", files: files), in: env, context: Self.context()) else { return }
        #expect(clean["clean"] == .bool(true))
        #expect(clean["checks"] == .number(4))
    }

    @Test("validate-integrity: a foreign key to a partitioned table is checked once, against the whole parent (its per-partition clones are not), so rows in other partitions are no violation")
    func validateIntegrityPartitioned() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE accounts (id int PRIMARY KEY, region int NOT NULL) PARTITION BY RANGE (id);
            CREATE TABLE accounts_low PARTITION OF accounts FOR VALUES FROM (0) TO (500);
            CREATE TABLE accounts_high PARTITION OF accounts FOR VALUES FROM (500) TO (1000);
            INSERT INTO accounts SELECT i, i % 3 FROM generate_series(0, 999) i;
            CREATE TABLE payments (id int PRIMARY KEY, account_id int REFERENCES accounts (id));
            INSERT INTO payments SELECT i, (i * 7) % 1000 FROM generate_series(1, 300) i;
            """)
        #expect(try await c.query("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conparentid <> 0").scalar != "0", "PostgreSQL made clones")
        guard case .object(let result)? = try await ValidateIntegrityJob().run(.init(database: "main", files: []), in: env, context: Self.context()) else {
            Issue.record("no result"); return
        }
        #expect(result["clean"] == .bool(true), "\(result)")
        #expect(result["checks"] == .number(1))
    }
}

/// A real worker process killed in the middle of a transactional migration.
@Suite("Migrations under faults: SIGKILL mid-migration (real worker, real PostgreSQL and Redis)", .serialized)
struct MigrationFaultTests {
    typealias T = MigrationRunTests

    @Test("a worker SIGKILLed inside a transactional file: nothing of it stays; the retry applies it exactly once")
    func killedMidMigration() async throws {
        let db = try await T.makeDatabase()
        defer { Task { await T.drop(db) } }
        let config = TestServices.temporaryDirectory("dbq-config") + "/dbq.yaml"
        try "databases:\n  main: \"\(T.server.replacingDatabase(db))\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let queueName = "migrate-kill-\(UUID().uuidString.prefix(8).lowercased())"
        let driver = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: T.logger)
        let env = ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info"]
        let workerArguments = ["worker", "--config", config, "--queues", queueName, "--lease", "10s", "--rescue-interval", "1s", "--idle-wait", "500ms"]
        // The file creates and fills a table, then waits on a lock the test holds.
        let file = MigrationFile(version: "0001", name: "made", up: """
            CREATE TABLE made (id int PRIMARY KEY);
            INSERT INTO made SELECT generate_series(1, 100);
            LOCK TABLE gate IN ACCESS EXCLUSIVE MODE;
            """)
        let holder = try await T.connect(db)
        _ = try await holder.execute("BEGIN; LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
        let a = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "A"], environment: env)
        let payload = try JSONValue(json: String(decoding: try JSONEncoder().encode(MigrateJob.Payload(database: "main", files: [file], lockTimeoutMs: 60_000)), as: UTF8.self))
        let pushed = try await driver.push(JobEnvelope(kind: "migrate", version: 1, payload: payload, queue: queueName, maxAttempts: 3))
        let observer = try await T.connect(db)
        defer { Task { await observer.close() } }
        // Waiting for the held table itself, not for any other lock.
        let waiting = try await polled(.seconds(90), every: .milliseconds(200), {
            try await observer.query("""
                    SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
                     WHERE a.application_name = 'dbq migrate' AND l.relation = 'gate'::regclass
                    """).scalar.flatMap { Int($0) } ?? 0
        }, until: { $0 != 0 })
        #expect(waiting == 1, "worker A never reached the lock: \(a.stderr.suffix(3000))")
        a.signal(SIGKILL)
        _ = await a.wait(timeout: .seconds(30))
        _ = try await holder.execute("ROLLBACK")
        await holder.close()
        #expect(try await observer.query("SELECT to_regclass('made') IS NULL").scalar == "t", "the killed transaction left nothing")

        let b = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "B"], environment: env)
        defer { b.signal(SIGTERM) }
        let record = try await polled(.seconds(120), { try await driver.job(pushed.id, queue: queueName) }, until: { ["succeeded", "dead"].contains($0?.state ?? "") })
        #expect(record?.state == "succeeded", "job: \(String(describing: record)); B: \(b.stderr.suffix(3000))")
        // Attempt 2 or later: a retry may itself wait out the killed session's locks (PostgreSQL
        // notices a dead client only at its next check) and be tried again; what must hold is
        // that B applied the file, once.
        #expect((record?.attempt ?? 0) >= 2 && record?.worker == "B", "job: \(String(describing: record))")
        #expect(try await observer.query("SELECT count(*) FROM made").scalar == "100")
        #expect(try await observer.query("SELECT count(*) || ':' || min(job_id) FROM dbq_migrations").scalar == "1:\(pushed.id)")
    }
}
