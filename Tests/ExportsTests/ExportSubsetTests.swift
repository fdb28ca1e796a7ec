import Anonymization
import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
@testable import Exports
import Foundation
import JobTestSupport
import Logging
import ObjectStorage
import PostgresClient
import Queue
import RedisClient
import RedisQueue
import Testing

/// Real PostgreSQL: subsets that follow references, the k-anonymity gate, server-side
/// rules, CSV and JSON lines, and a worker killed mid-export.
@Suite("Export subsets, gates, server rules, formats and faults (real PostgreSQL)", .serialized)
struct ExportSubsetTests {
    typealias T = ExportTests

    static func export(_ env: JobEnvironment, _ payload: ExportJob.Payload, key: String) async throws -> (ExportManifest, [String: [UInt8]], JSONValue?) {
        try await T.export(env, payload, key: key)
    }

    /// A shop whose customers also reference each other (chains of ten: a cycle-capable
    /// self-reference).
    static func makeLinkedShop(customers: Int = 1_000) async throws -> String {
        let db = try await T.makeShop(customers: customers)
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        _ = try await c.execute("""
            ALTER TABLE customers ADD referrer bigint REFERENCES customers;
            UPDATE customers SET referrer = id - 1 WHERE id % 10 <> 1;
            """)
        await c.close()
        return db
    }

    @Test("--follow-references: a subset of orders brings exactly the customers they reference, and those customers' referrers; it imports with every constraint")
    func followReferences() async throws {
        let source = try await Self.makeLinkedShop()
        let target = try await T.emptyDatabase()
        defer { Task { await T.drop(source); await T.drop(target) } }
        var setup = try T.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(T.server.replacingDatabase(target))
        let env = setup
        let payload = ExportJob.Payload(database: "main", tables: ["orders"], conditions: ["orders": "id <= 30"], codec: "none", followReferences: true)
        let (manifest, objects, result) = try await Self.export(env, payload, key: "follow-key-0123456789abcdef")
        #expect(manifest.tables.map(\.qualifiedName) == ["public.customers", "public.orders"])
        #expect(manifest.followReferences == true)
        let orders = T.rows(objects["public.orders.copy"])
        let customers = T.rows(objects["public.customers.copy"])
        #expect(orders.count == 30)
        // The closure, computed by the database itself.
        let expected = try await T.count(source, """
            WITH RECURSIVE chosen(id) AS (SELECT customer_id FROM orders WHERE id <= 30
                UNION SELECT c.referrer FROM customers c JOIN chosen ON c.id = chosen.id WHERE c.referrer IS NOT NULL)
            SELECT count(*) FROM chosen
            """)
        #expect(customers.count == expected && expected > 30)
        let ids = Set(customers.map { $0[0] })
        #expect(orders.allSatisfy { ids.contains($0[1]) }, "every order's customer is exported")
        #expect(customers.allSatisfy { $0[8] == nil || ids.contains($0[8]) }, "every referrer is exported")
        guard case .object(let fields)? = result, case .object(let perTable)? = fields["rowsPerTable"] else { Issue.record("no rows per table"); return }
        #expect(perTable["public.customers"] == .number(Double(expected)))
        // Loads with its foreign keys in place (schema.sql has them): nothing dangles.
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: T.context())
        #expect(try await T.count(target, "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id") == 30)

        // Without following, the subset is only what the condition says.
        let plain = try await Self.export(env, .init(database: "main", tables: ["orders"], conditions: ["orders": "id <= 30"], codec: "none"),
                                          key: "follow-key-0123456789abcdef")
        #expect(plain.0.tables.map(\.qualifiedName) == ["public.orders"])
        // A condition the server rejects is named, and nothing is left behind.
        for follow in [true, false] {
            do {
                _ = try await Self.export(env, .init(database: "main", conditions: ["orders": "no_such_column > 1"], followReferences: follow),
                                          key: "k-0123456789abcdef")
                Issue.record("a broken condition exported")
            } catch let error as JobError {
                #expect(!error.isRetryable, "\(error)")
                #expect("\(error)".contains(follow ? "a --where condition does not work" : "table public.orders could not be read as asked"), "\(error)")
                #expect("\(error)".contains("no_such_column"), "\(error)")
            }
        }
    }

    @Test("a --where condition is one expression, run read-only: a second statement is refused before the database sees it; a function that writes fails in the read-only transaction, with or without following references; nothing changes, nothing is exported")
    func conditionsReadOnly() async throws {
        let db = try await T.makeShop(customers: 200)
        defer { Task { await T.drop(db) } }
        let store = TestServices.temporaryDirectory("dbq-exports")
        let env = try T.environment(db, store: store)
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE FUNCTION wipe() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN DELETE FROM orders; RETURN true; END $$;
            """)
        let before = try await T.count(db, "SELECT count(*) FROM orders")
        for condition in ["id <= 10; DELETE FROM orders", "id <= 10) TO STDOUT; DELETE FROM orders; COPY (SELECT 1", "true ORDER BY 1", "true UNION SELECT 1"] {
            for follow in [true, false] {
                let error = await #expect(throws: JobError.self) {
                    _ = try await Self.export(env, .init(database: "main", tables: ["orders"], conditions: ["orders": condition], followReferences: follow),
                                              key: "k-0123456789abcdef")
                }
                #expect(error?.message.contains("is not one SQL expression") == true, "\(condition): \(String(describing: error))")
            }
        }
        for follow in [true, false] {
            let error = await #expect(throws: JobError.self) {
                _ = try await Self.export(env, .init(database: "main", tables: ["orders"], conditions: ["orders": "id <= 10 AND wipe()"], followReferences: follow),
                                          key: "k-0123456789abcdef")
            }
            #expect("\(String(describing: error))".contains("read-only transaction"), "follow \(follow): \(String(describing: error))")
        }
        #expect(try await T.count(db, "SELECT count(*) FROM orders") == before, "no condition changed a row")
        let written = FileManager.default.enumerator(atPath: store)?.allObjects.compactMap { $0 as? String }.filter { $0.hasSuffix("manifest.json") } ?? []
        #expect(written.isEmpty, "\(written)")
    }

    static let gatePolicy = T.policy + """

        k_anonymity:
          public.customers: {quasi_identifiers: [born, city], k: 3}
        """

    @Test("k-anonymity: refused naming the smallest group, nothing written; report mode exports and records the check")
    func kAnonymityGate() async throws {
        let db = try await T.makeShop(customers: 400)
        defer { Task { await T.drop(db) } }
        let env = try T.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        do {
            _ = try await Self.export(env, .init(database: "main", policy: Self.gatePolicy, codec: "none"), key: "gate-key-0123456789abcdef")
            Issue.record("an export below k passed")
        } catch {
            let text = "\(error)"
            #expect(text.contains("k-anonymity (k_anonymity.public.customers, k = 3) does not hold"), "\(text)")
            #expect(text.contains("the smallest occurs") && !text.contains("born="), "\(text)")
            #expect(text.contains("Nothing was exported"))
        }
        let (_, store) = try env.store(nil)
        #expect(try await store.list(prefix: "exports/").isEmpty, "a refused export leaves nothing")
        // Checked before anything is stored: into a bucket that does not exist (every write
        // would fail), the refusal is still k-anonymity's, not the store's.
        let unwritable = try JobFixtures.environment(
            main: db, storage: StorageSettings(url: try StorageURL("s3://dbq-no-such-bucket-\(UUID().uuidString.prefix(8).lowercased())/exports-test"),
                                               endpoint: TestServices.s3Endpoint, region: "us-east-1", addressing: .path,
                                               accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey),
            lockWait: .seconds(2), logger: T.logger)
        let early = await #expect(throws: JobError.self) {
            _ = try await Self.export(unwritable, .init(database: "main", policy: Self.gatePolicy, codec: "none"), key: "gate-key-0123456789abcdef")
        }
        #expect(early?.message.contains("k-anonymity (k_anonymity.public.customers, k = 3) does not hold") == true, "\(String(describing: early))")

        let report = Self.gatePolicy.replacingOccurrences(of: "k: 3}", with: "k: 3, mode: report}")
        let (manifest, _, result) = try await Self.export(env, .init(database: "main", policy: report, codec: "none"), key: "gate-key-0123456789abcdef")
        let check = try #require(manifest.tables.first { $0.name == "customers" }?.kAnonymity)
        #expect(!check.passed && check.k == 3 && check.rows == 400 && check.groupsBelowK > 0)
        guard case .object(let fields)? = result, case .array(let reports)? = fields["kAnonymity"] else { Issue.record("no report in the result"); return }
        #expect(reports.count == 1)

        // Coarse enough quasi-identifiers pass: birth year alone, in 400 customers over 55 years.
        let passing = Self.gatePolicy.replacingOccurrences(of: "[born, city], k: 3", with: "[born], k: 2")
        let (ok, _, _) = try await Self.export(env, .init(database: "main", policy: passing, codec: "none"), key: "gate-key-0123456789abcdef")
        #expect(ok.tables.first { $0.name == "customers" }?.kAnonymity?.passed == true)
    }

    @Test("shuffle keeps the column's values (other rows) and is keyed; sql runs on the server, cast to the column's type")
    func serverRules() async throws {
        let db = try await T.makeShop(customers: 300)
        defer { Task { await T.drop(db) } }
        let env = try T.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let policy = T.policy
            .replacingOccurrences(of: "    id: hash\n", with: "    id: keep\n")
            .replacingOccurrences(of: "city: keep", with: "city: shuffle")
            .replacingOccurrences(of: "phone: {rule: hash, pattern: digits}", with: "phone: shuffle")
            .replacingOccurrences(of: "zip: {rule: mask, keep_first: 2, keep_last: 0}", with: "zip: {rule: sql, expression: \"left(zip, 2) || '000'\"}")
        let payload = ExportJob.Payload(database: "main", tables: ["customers"], policy: policy, codec: "none")
        let a = T.rows(try await Self.export(env, payload, key: "shuffle-key-0123456789ab").1["public.customers.copy"])
        let b = T.rows(try await Self.export(env, payload, key: "shuffle-key-0123456789ab").1["public.customers.copy"])
        // Another key masks into another store (a store keeps to one key).
        let other = try T.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let c = T.rows(try await Self.export(other, payload, key: "other-shuffle-key-01234567").1["public.customers.copy"])
        let source = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        defer { Task { await source.close() } }
        let original = Dictionary(uniqueKeysWithValues: try await source.query("SELECT id::text, city FROM customers").map { ($0[0]!, $0[1]) })
        #expect(a.count == 300)
        #expect(a.map { $0[6] ?? "" }.sorted() == original.values.map { $0 ?? "" }.sorted(), "the same cities, permuted")
        let moved = a.filter { original[$0[0]!] != $0[6] }.count
        #expect(moved > 200, "most rows hold another row's city: \(moved) of 300")
        // A derangement: with unique phones, no row keeps its own.
        let phones = Dictionary(uniqueKeysWithValues: try await source.query("SELECT id::text, phone FROM customers").map { ($0[0]!, $0[1]) })
        #expect(a.map { $0[3] ?? "" }.sorted() == phones.values.map { $0 ?? "" }.sorted(), "the same phones, permuted")
        let kept = a.filter { phones[$0[0]!] == $0[3] }.count
        #expect(kept == 0, "\(kept) rows kept their own phone")
        // One row has nothing to swap with: the export stops, saying so.
        do {
            _ = try await Self.export(env, ExportJob.Payload(database: "main", tables: ["customers"], conditions: ["customers": "id = 1"], policy: policy, codec: "none"),
                                      key: "shuffle-key-0123456789ab")
            Issue.record("a one-row shuffle was exported")
        } catch {
            #expect("\(error)".contains("shuffle needs two rows or more"), "\(error)")
        }
        #expect(a.map { $0[6] } == b.map { $0[6] }, "one key, one permutation")
        #expect(a.map { $0[6] } != c.map { $0[6] }, "another key, another permutation")
        #expect(a.allSatisfy { $0[7]?.count == 5 && $0[7]!.hasSuffix("000") })
    }

    @Test("redact values: customers' names quoted in ticket bodies are replaced by the names the policy gives those customers")
    func redactValues() async throws {
        let db = try await T.makeShop(customers: 300)
        defer { Task { await T.drop(db) } }
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        _ = try await c.execute("UPDATE tickets SET body = body || ' Regards, Firstname' || id || ' Lastname' || id")
        await c.close()
        let env = try T.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let policy = T.policy.replacingOccurrences(of: "body: {rule: redact, email_length: 52}",
                                                   with: "body: {rule: redact, email_length: 52, values: [public.customers.name]}")
        let (_, objects, _) = try await Self.export(env, .init(database: "main", policy: policy, codec: "none"), key: "values-key-0123456789abc")
        let customers = T.rows(objects["public.customers.copy"])
        let tickets = T.rows(objects["public.tickets.copy"])
        #expect(tickets.count == 150)
        let bodies = tickets.compactMap { $0[2] }.joined(separator: "\n")
        #expect(!bodies.contains("Lastname"), "an original name left in a body")
        // Ticket 1 quotes customer 1: its body now carries customer 1's masked name (the row with ticket 1's masked email).
        let first = try #require(tickets.first { $0[0] == "1" })
        let customer = try #require(customers.first { $0[1] == first[1] })
        #expect(first[2]?.hasSuffix("Regards, \(customer[4]!)") == true, "\(first[2] ?? "") vs \(customer[4] ?? "")")
    }

    @Test("a table without a primary key: skip and upsert are refused (they would add its rows again), nothing imported; an empty one is no obstacle")
    func importWithoutKey() async throws {
        let source = try await T.makeShop(customers: 50)
        let target = try await T.emptyDatabase()
        defer { Task { await T.drop(source); await T.drop(target) } }
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(source), logger: T.logger)
        _ = try await c.execute("""
            CREATE TABLE audit (at timestamptz, what text); INSERT INTO audit SELECT now(), 'event ' || i FROM generate_series(1, 20) i;
            CREATE TABLE scratch (note text);
            """)
        await c.close()
        var setup = try T.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(T.server.replacingDatabase(target))
        let env = setup
        _ = try await Self.export(env, .init(database: "main", codec: "none"), key: "nokey-key-0123456789abcdef")
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: T.context())
        #expect(try await T.count(target, "SELECT count(*) FROM audit") == 20)
        for mode in [ImportJob.Mode.skip, .upsert] {
            do {
                _ = try await ImportJob().run(.init(database: "staging", mode: mode), in: env, context: T.context())
                Issue.record("\(mode) ran on a table without a key")
            } catch {
                #expect("\(error)".contains("table public.audit has no primary key"), "\(error)")
            }
            #expect(try await T.count(target, "SELECT count(*) FROM audit") == 20, "\(mode) added rows")
        }
        // Without the keyless table with rows, upsert runs (scratch is empty and keyless).
        _ = try await ImportJob().run(.init(database: "staging", tables: ["customers", "scratch"], mode: .upsert), in: env, context: T.context())
        #expect(try await T.count(target, "SELECT count(*) FROM customers") == 50)
    }

    static func digest(_ db: String, _ table: String) async throws -> String {
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        defer { Task { await c.close() } }
        return try await c.query("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \(table) t").scalar ?? ""
    }

    @Test("csv and jsonl: masked exports that import into the same rows as the COPY format")
    func formats() async throws {
        let source = try await T.makeShop(customers: 300)
        var targets: [String] = []
        for _ in 0..<3 { targets.append(try await T.emptyDatabase()) }
        let dbs = targets
        defer { Task { await T.drop(source); for t in dbs { await T.drop(t) } } }
        var setup = try T.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        for (i, t) in targets.enumerated() { setup.configuration.databases["t\(i)"] = try PostgresConnectionString(T.server.replacingDatabase(t)) }
        let env = setup
        for (i, format) in ["copy", "csv", "jsonl"].enumerated() {
            let (manifest, _, _) = try await Self.export(env, .init(database: "main", policy: T.policy, format: format), key: "format-key-0123456789abc")
            #expect(manifest.rowFormat?.rawValue == format)
            #expect(manifest.tables.allSatisfy { $0.objects.first?.name.hasSuffix(".\(format).zst") == true })
            _ = try await ImportJob().run(.init(database: "t\(i)", export: manifest.id, createSchema: true), in: env, context: T.context())
        }
        for table in ["customers", "orders", "tickets"] {
            let copy = try await Self.digest(targets[0], table)
            #expect(try await Self.digest(targets[1], table) == copy, "csv \(table)")
            #expect(try await Self.digest(targets[2], table) == copy, "jsonl \(table)")
        }
        #expect(try await T.count(targets[2], "SELECT count(*) FROM tickets t JOIN customers c ON c.email = t.customer_email") == 150)
    }
}

/// A real worker process killed while its export waits on a table: no manifest.
@Suite("Exports under faults: SIGKILL mid-export (real worker, real PostgreSQL and Redis)", .serialized)
struct ExportFaultTests {
    typealias T = ExportTests

    @Test("a worker SIGKILLed mid-export (two tables written, the third waiting) leaves no manifest; the retry completes once")
    func killedMidExport() async throws {
        let db = try await T.makeShop(customers: 500)
        defer { Task { await T.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-exports")
        let config = TestServices.temporaryDirectory("dbq-config") + "/dbq.yaml"
        try """
            databases:
              main: "\(T.server.replacingDatabase(db))"
            storages:
              archive:
                url: "file://\(dir)"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let queueName = "export-kill-\(UUID().uuidString.prefix(8).lowercased())"
        let driver = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: T.logger)
        let env = ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info", AnonymizationKey.environmentVariable: "kill-key-0123456789abcdef"]
        let workerArguments = ["worker", "--config", config, "--queues", queueName, "--lease", "10s", "--rescue-interval", "1s", "--idle-wait", "500ms"]

        // The hold: tickets locked, so the export stops after customers and orders, however slow the machine.
        let holder = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        _ = try await holder.execute("BEGIN; LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        let a = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "A"], environment: env)
        let pushed = try await driver.push(JobEnvelope(kind: "export", version: 1, payload: .object(["database": .string("main"), "policy": .string(T.policy)]),
                                                       queue: queueName, maxAttempts: 3))
        // Watched from a connection of its own: inside the holder's transaction
        // pg_stat_activity is a snapshot taken at its first read, and would never change.
        let observer = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        defer { Task { await observer.close() } }
        // Waiting for the held table itself, not for any other lock.
        let waiting = try await polled(.seconds(90), every: .milliseconds(200), {
            try await observer.query("""
                    SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
                     WHERE a.application_name = 'dbq export' AND l.relation = 'tickets'::regclass
                    """).scalar.flatMap { Int($0) } ?? 0
        }, until: { $0 != 0 })
        if waiting != 1 {
            let activity = try await observer.query("SELECT application_name, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity WHERE datname = current_database()")
            let job = try await driver.job(pushed.id, queue: queueName)
            Issue.record("worker A never reached the locked table (\(waiting) waiting); job: \(String(describing: job)); sessions: \(activity.map { $0.values })); A: \(a.stderr.suffix(3000))")
        }
        a.signal(SIGKILL)
        _ = await a.wait(timeout: .seconds(30))
        let written = (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? []
        #expect(written.contains { $0.hasSuffix("public.orders.copy.zst") }, "A had written its first tables: \(written)")
        #expect(!written.contains { $0.hasSuffix("manifest.json") }, "a killed export has no manifest")
        _ = try await holder.execute("ROLLBACK")
        await holder.close()

        let b = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "B"], environment: env)
        defer { b.signal(SIGTERM) }
        let record = try await polled(.seconds(120), { try await driver.job(pushed.id, queue: queueName) }, until: { ["succeeded", "dead"].contains($0?.state ?? "") })
        #expect(record?.state == "succeeded", "job: \(String(describing: record)); B: \(b.stderr.suffix(3000))")
        #expect(record?.attempt == 2 && record?.worker == "B")
        let store = try StorageSettings(url: try StorageURL("file://" + dir)).open(logger: T.logger)
        let catalog = try await ExportCatalog.load(store)
        #expect(catalog.entries.count == 1)
        #expect(catalog.entries.first?.manifest.job.attempt == 2)
        #expect(catalog.entries.first?.manifest.tables.map(\.rows) == [500, 1_500, 250])
    }
}

/// Unique stays unique at scale: a million rows through a real export and a real import
/// whose schema carries the unique constraints.
@Suite("A million unique rows masked (real PostgreSQL)")
struct MillionRowTests {
    typealias T = ExportTests

    @Test("1,000,000 rows: masked id, email and national id stay unique (the target's unique constraints accept every row), no original left")
    func millionUnique() async throws {
        let source = "dbqt_million_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8).lowercased()
        let target = try await T.emptyDatabase()
        defer { Task { await T.drop(source); await T.drop(target) } }
        let admin = try await PostgresConnection.connect(T.server.raw, logger: T.logger)
        _ = try await admin.execute("CREATE DATABASE \(source)")
        await admin.close()
        let db = try await PostgresConnection.connect(T.server.replacingDatabase(source), logger: T.logger)
        _ = try await db.execute("""
            CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, national_id text NOT NULL UNIQUE);
            INSERT INTO people SELECT i, 'p' || i || '@x' || (i % 10) || '.example', 'NI-' || lpad(i::text, 9, '0') FROM generate_series(1, 1000000) i;
            """)
        await db.close()
        var setup = try T.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(T.server.replacingDatabase(target))
        let env = setup
        let policy = """
            tables:
              public.people:
                id: hash
                email: {rule: email, length: 52, case: keep}
                national_id: {rule: hash, pattern: digits}
            """
        _ = try await T.withKey("million-key-0123456789abcdef") { try await ExportJob().run(.init(database: "main", policy: policy), in: env, context: T.context()) }
        // The schema carries PRIMARY KEY and both UNIQUE constraints: one duplicate and the import fails.
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: T.context())
        #expect(try await T.count(target, "SELECT count(*) FROM people") == 1_000_000)
        #expect(try await T.count(target, "SELECT count(DISTINCT email) + count(DISTINCT national_id) + count(DISTINCT id) FROM people") == 3_000_000)
        #expect(try await T.count(target, "SELECT count(*) FROM people WHERE email LIKE 'p%@x%.example'") == 0)
        // Digits permuted, shape kept.
        #expect(try await T.count(target, "SELECT count(*) FROM people WHERE national_id !~ '^NI-[0-9]{9}$'") == 0)
    }
}
