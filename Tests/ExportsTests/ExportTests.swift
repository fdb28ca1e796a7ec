import Anonymization
import Backups
import Codecs
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
import Testing

/// Real PostgreSQL, a real store: what a masked export must and must not contain.
@Suite("Exports with anonymization (real PostgreSQL)", .serialized)
struct ExportTests {
    static let logger = Logger(label: "dbq.test.exports")
    static var server: PostgresConnectionString { JobFixtures.server }

    /// customers (unique email and national id, phone, name, birth date, city, zip),
    /// orders → customers by foreign key, tickets → customers by email value, with bodies
    /// quoting emails and phones.
    static func makeShop(customers: Int = 2_000) async throws -> String {
        let name = "dbqt_shop_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        let db = try await PostgresConnection.connect(server.replacingDatabase(name), logger: logger)
        _ = try await db.execute("""
            CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, national_id text UNIQUE, phone text,
                                    name text, born date, city text, zip text);
            INSERT INTO customers SELECT i, 'person' || i || '@mail' || (i % 7) || '.example', 'NI' || lpad(i::text, 9, '0'),
                   '+49 30 ' || lpad((1000000 + i * 7)::text, 7, '0'), 'Firstname' || i || ' Lastname' || i,
                   date '1950-01-01' + (i * 37 % 20000), 'City' || (i % 13), lpad((i % 90000 + 10000)::text, 5, '0')
              FROM generate_series(1, \(customers)) i;
            CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric(10,2) NOT NULL);
            INSERT INTO orders SELECT i, (i % \(customers)) + 1, (i % 1000) / 10.0 FROM generate_series(1, \(customers * 3)) i;
            CREATE TABLE tickets (id integer PRIMARY KEY, customer_email text, body text);
            INSERT INTO tickets SELECT i, 'person' || i || '@mail' || (i % 7) || '.example',
                   'Hello, I am person' || i || '@mail' || (i % 7) || '.example, call me on +49 30 ' || lpad((1000000 + i * 7)::text, 7, '0') || E'.\\nThanks\\tagain'
              FROM generate_series(1, \(customers / 2)) i;
            """)
        await db.close()
        return name
    }

    static func drop(_ name: String) async {
        if let admin = try? await PostgresConnection.connect(server.raw, logger: logger) {
            _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            await admin.close()
        }
    }

    static let policy = """
        strict: true
        tables:
          public.customers:
            id: hash
            email: {rule: email, length: 52, case: keep}
            national_id: {rule: hash, prefix: "NI-"}
            phone: {rule: hash, pattern: digits}
            name: {rule: fake, kind: full_name}
            born: {rule: generalize, to: year}
            city: keep
            zip: {rule: mask, keep_first: 2, keep_last: 0}
          public.orders:
            id: keep
            total: keep
          public.tickets:
            id: keep
            body: {rule: redact, email_length: 52}
        references:
          - {from: public.tickets.customer_email, to: public.customers.email}
        """

    static func environment(_ database: String, store: String) throws -> JobEnvironment {
        try JobFixtures.environment(main: database, storage: JobFixtures.localStorage(path: store), lockWait: .seconds(2), logger: logger)
    }

    static func context() -> JobContext { JobFixtures.context("export", logger: logger) }

    /// Runs an export with `key` in the environment, returns the folder's objects by name.
    static func export(_ env: JobEnvironment, policy: String?, key: String, codec: String = "none") async throws -> (ExportManifest, [String: [UInt8]]) {
        let (manifest, objects, _) = try await export(env, .init(database: "main", policy: policy, codec: codec), key: key)
        return (manifest, objects)
    }

    /// The key lives in the process environment, which suites running in parallel share:
    /// an export holds it from setting the key to the job's end, so another suite's key
    /// cannot slip in between.
    static let keyLock = KeyLock()

    static func withKey<R: Sendable>(_ key: String, _ body: () async throws -> R) async throws -> R {
        await keyLock.acquire()
        setenv(AnonymizationKey.environmentVariable, key, 1)
        do {
            let result = try await body()
            await keyLock.release()
            return result
        } catch {
            await keyLock.release()
            throw error
        }
    }

    /// Runs an export of `payload` with `key` in the environment: its manifest, its objects
    /// by name (as stored), and the job's result.
    static func export(_ env: JobEnvironment, _ payload: ExportJob.Payload, key: String) async throws -> (ExportManifest, [String: [UInt8]], JSONValue?) {
        let result = try await withKey(key) { try await ExportJob().run(payload, in: env, context: context()) }
        guard case .object(let fields)? = result, case .string(let folder)? = fields["folder"] else { throw JobError.permanent("no folder") }
        let (_, store) = try env.store(nil)
        var objects: [String: [UInt8]] = [:]
        for info in try await store.list(prefix: folder + "/") {
            objects[String(info.key.dropFirst(folder.count + 1))] = try await store.getBytes(info.key, limit: 256 << 20)
        }
        let manifest = try ManifestCoding.decoder.decode(ExportManifest.self, from: Data(objects["manifest.json"] ?? []))
        return (manifest, objects, result)
    }

    /// `needle` anywhere in `haystack`: memchr for its first byte, memcmp for the rest
    /// (thousands of originals over megabytes).
    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard let first = n.first else { return true }
        return haystack.withUnsafeBytes { h in
            n.withUnsafeBytes { nb in
                guard let base = h.baseAddress else { return false }
                var p = base
                let end = base + h.count
                while end - p >= n.count, let hit = memchr(p, Int32(first), end - p) {
                    let at = UnsafeRawPointer(hit)
                    if end - at >= n.count && memcmp(at, nb.baseAddress!, n.count) == 0 { return true }
                    p = at + 1
                }
                return false
            }
        }
    }

    static func rows(_ bytes: [UInt8]?) -> [[String?]] {
        (bytes ?? []).split(separator: 0x0A, omittingEmptySubsequences: true).map { CopyText.decode($0) }
    }

    @Test("a masked export: no original sensitive value anywhere, unique stays unique, references join, the key is only a fingerprint")
    func masked() async throws {
        let db = try await Self.makeShop()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let secret = "export-test-key-0123456789"
        let (manifest, objects) = try await Self.export(env, policy: Self.policy, key: secret)
        #expect(manifest.tables.map(\.qualifiedName) == ["public.customers", "public.orders", "public.tickets"])
        #expect(manifest.tables.first { $0.name == "orders" }?.rows == 6_000)
        #expect(try AnonymizationKey(secret).matches(fingerprint: manifest.keyFingerprint ?? "") == true, "\(manifest.keyFingerprint ?? "none")")
        #expect(try AnonymizationKey("another-key-0123456789abcdef").matches(fingerprint: manifest.keyFingerprint ?? "") == false)
        #expect(manifest.policyDigest?.count == 64)
        // The columns left as they are, each with why: exactly the policy's keeps (a
        // foreign key inherits its referenced column's rule, so orders.customer_id is hashed).
        #expect(manifest.rawColumns == ["public.customers.city: kept as it is (tables.public.customers.city)",
                                        "public.orders.id: kept as it is (tables.public.orders.id)",
                                        "public.orders.total: kept as it is (tables.public.orders.total)",
                                        "public.tickets.id: kept as it is (tables.public.tickets.id)"], "\(manifest.rawColumns ?? [])")
        let everything = objects.values.map { String(decoding: $0, as: UTF8.self) }.joined()
        #expect(!everything.contains(secret))

        // No original value of a sensitive column appears in any exported byte.
        let source = try await PostgresConnection.connect(Self.server.replacingDatabase(db), logger: Self.logger)
        let originals = try await source.query("SELECT email, national_id, phone, name FROM customers")
        let data = Array(objects.filter { $0.key != "schema.sql" }.values.joined())
        var leaked: [String] = []
        for row in originals {
            for value in row.values.compactMap({ $0 }) where Self.contains(data, value) { leaked.append(value) }
        }
        #expect(leaked.isEmpty, "originals in the export: \(leaked.prefix(5))")

        let customers = Self.rows(objects["public.customers.copy"])
        #expect(customers.count == 2_000)
        #expect(Set(customers.map { $0[1] }).count == 2_000, "masked emails stay unique")
        #expect(Set(customers.map { $0[2] }).count == 2_000, "masked national ids stay unique")
        #expect(Set(customers.map { $0[0] }).count == 2_000, "masked ids stay unique")
        // Joins: every order's masked customer_id is a masked customer id; every ticket's
        // customer_email is a masked customer email.
        let ids = Set(customers.map { $0[0] }), emails = Set(customers.map { $0[1] })
        let orders = Self.rows(objects["public.orders.copy"])
        #expect(orders.allSatisfy { ids.contains($0[1]) })
        let tickets = Self.rows(objects["public.tickets.copy"])
        #expect(tickets.count == 1_000 && tickets.allSatisfy { emails.contains($0[1]) })
        // The email quoted in a ticket's body is masked as the customer's email is.
        let first = try #require(tickets.first { $0[0] == "1" })
        #expect(first[2]?.contains(first[1]!) == true, "\(first)")
        #expect(first[2]?.hasSuffix(".\nThanks\tagain") == true)
        await source.close()
    }

    @Test("import: GENERATED ALWAYS identity columns load their exported values; --export latest over exports of two databases asks whose (--source), naming both; --tables load in dependency order; replace refuses what would cascade outside the import and its dry run counts deletions")
    func importIdentityAndLatest() async throws {
        let source = try await Self.emptyDatabase()
        let other = try await Self.makeShop(customers: 20)
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(other); await Self.drop(target) } }
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await c.execute("""
            CREATE TABLE things (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
            INSERT INTO things (name) SELECT 'thing ' || i FROM generate_series(1, 300) i;
            DELETE FROM things WHERE id % 3 = 0;
            """)
        await c.close()
        var setup = try Self.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["other"] = try PostgresConnectionString(Self.server.replacingDatabase(other))
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        _ = try await Self.export(env, .init(database: "main", codec: "none"), key: "identity-key-0123456789abcdef")
        _ = try await Self.export(env, .init(database: "other", tables: ["customers"], codec: "none"), key: "identity-key-0123456789abcdef")
        let ambiguous = await #expect(throws: JobError.self) {
            _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: Self.context())
        }
        #expect(ambiguous?.message.contains("holds exports of main, other; say whose with --source") == true, "\(String(describing: ambiguous))")
        _ = try await ImportJob().run(.init(database: "staging", source: "main", createSchema: true), in: env, context: Self.context())
        #expect(try await Self.count(target, "SELECT count(*) FROM things") == 200)
        #expect(try await Self.count(target, "SELECT count(*) FROM things WHERE id % 3 = 0") == 0, "the exported ids, not new ones")
        #expect(try await Self.count(target, "SELECT max(id) FROM things") == 299)
        // The identity's sequence is past the loaded ids: the next insert takes a new one.
        #expect(try await Self.count(target, "INSERT INTO things (name) VALUES ('new') RETURNING id") == 300)

        // --tables typed child first loads in the export's order (customers before the
        // orders that reference them), once each.
        let shop = try await Self.emptyDatabase()
        defer { Task { await Self.drop(shop) } }
        var withShop = env
        withShop.configuration.databases["shop"] = try PostgresConnectionString(Self.server.replacingDatabase(shop))
        let full = try await Self.export(withShop, .init(database: "other", codec: "none"), key: "identity-key-0123456789abcdef")
        _ = try await ImportJob().run(.init(database: "shop", export: full.0.id, tables: ["orders", "public.customers", "orders"], createSchema: true),
                                      in: withShop, context: Self.context())
        #expect(try await Self.count(shop, "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id") == 60)

        // --mode replace deletes first: a table outside the import with ON DELETE CASCADE
        // to a loaded one is refused, naming it (it would be emptied); a dry run says what
        // replace would delete.
        let s = try await PostgresConnection.connect(Self.server.replacingDatabase(shop), logger: Self.logger)
        _ = try await s.execute("CREATE TABLE notes (id int, customer_id bigint REFERENCES customers ON DELETE CASCADE); INSERT INTO notes SELECT id, id FROM customers WHERE id <= 5")
        await s.close()
        let cascade = await #expect(throws: JobError.self) {
            _ = try await ImportJob().run(.init(database: "shop", export: full.0.id, tables: ["customers", "orders"], mode: .replace), in: withShop, context: Self.context())
        }
        #expect(cascade?.message.contains("public.notes (foreign key notes_customer_id_fkey → public.customers ON DELETE CASCADE)") == true, "\(String(describing: cascade))")
        #expect(try await Self.count(shop, "SELECT count(*) FROM notes") == 5, "nothing outside the import changed")
        let dry = try await ImportJob().run(.init(database: "shop", export: full.0.id, tables: ["orders"], mode: .replace, dryRun: true), in: withShop, context: Self.context())
        guard case .object(let fields)? = dry, case .object(let perTable)? = fields["tables"], case .object(let orders)? = perTable["public.orders"] else {
            Issue.record("no tables in \(String(describing: dry))"); return
        }
        #expect(orders["delete"] == .number(60) && orders["insert"] == .number(60), "\(orders)")
    }

    @Test("schema.sql carries no comment (free prose may quote a person) and is checked like every object: an altered one is refused before it runs, nothing imported")
    func schemaChecked() async throws {
        let db = try await Self.makeShop(customers: 50)
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(db); await Self.drop(target) } }
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(db), logger: Self.logger)
        _ = try await c.execute("""
            COMMENT ON COLUMN customers.email IS 'for example anna.original@mail.example, who asked us to write';
            COMMENT ON TABLE tickets IS 'opened by Bertha Original-Person';
            """)
        await c.close()
        let dir = TestServices.temporaryDirectory("dbq-exports")
        var setup = try Self.environment(db, store: dir)
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        let (manifest, objects, _) = try await Self.export(env, .init(database: "main", policy: Self.policy, codec: "none"), key: "schema-key-0123456789abcdef")
        let schema = String(decoding: objects["schema.sql"] ?? [], as: UTF8.self)
        #expect(schema.contains("CREATE TABLE public.customers"))
        #expect(!schema.contains("anna.original") && !schema.contains("Original-Person") && !schema.contains("COMMENT ON"), "\(schema)")
        // One byte of schema.sql altered in the store: the import stops at its checksum.
        let path = dir + "/exports/main/" + manifest.id + "/schema.sql"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let refused = await #expect(throws: JobError.self) {
            _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: Self.context())
        }
        #expect(refused?.message.contains("schema.sql is corrupt") == true && refused?.message.contains("nothing was imported") == true, "\(String(describing: refused))")
        #expect(try await Self.count(target, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == 0, "no table was made")
    }

    @Test("strict: false with tables: {} is a raw copy, and says so: the manifest and the result list every column exported as it is, with why")
    func rawCopyNamed() async throws {
        let db = try await Self.makeShop(customers: 50)
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let (manifest, _, result) = try await Self.export(env, .init(database: "main", policy: "strict: false\ntables: {}\n", codec: "none"),
                                                          key: "raw-key-0123456789abcdef")
        let columns = manifest.tables.flatMap { t in t.columns.map { "\(t.qualifiedName).\($0.name)" } }
        #expect(manifest.rawColumns == columns.map { "\($0): kept as it is (not in the policy (strict: false))" }, "\(manifest.rawColumns ?? [])")
        guard case .object(let fields)? = result, case .array(let raw)? = fields["rawColumns"] else { Issue.record("no rawColumns in \(String(describing: result))"); return }
        #expect(raw == columns.map(JSONValue.string))
        #expect(fields["masked"] == .bool(true), "a policy was applied, and rawColumns says what it left")
    }

    @Test("one key gives the same export twice; another key another one, in another store: a store whose masked exports used one key refuses a worker with another, naming the fingerprint's place, and stores nothing")
    func deterministic() async throws {
        let db = try await Self.makeShop(customers: 300)
        defer { Task { await Self.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-exports")
        let env = try Self.environment(db, store: dir)
        let a = try await Self.export(env, policy: Self.policy, key: "same-key-0123456789abcdef").1
        let b = try await Self.export(env, policy: Self.policy, key: "same-key-0123456789abcdef").1
        let recorded = try String(contentsOfFile: dir + "/exports/key-fingerprint", encoding: .utf8)
        let refusal = await #expect(throws: JobError.self) { _ = try await Self.export(env, policy: Self.policy, key: "other-key-0123456789abcdef") }
        #expect(refusal?.message.contains("is not the key the masked exports in") == true && refusal?.message.contains("exports/key-fingerprint") == true,
                "\(String(describing: refusal))")
        #expect(try String(contentsOfFile: dir + "/exports/key-fingerprint", encoding: .utf8) == recorded, "the record is the first key's still")
        let manifests = FileManager.default.enumerator(atPath: dir + "/exports")?.allObjects.compactMap { $0 as? String }.filter { $0.hasSuffix("manifest.json") }
        #expect(manifests?.count == 2, "the refused export stored nothing")
        let other = try Self.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let c = try await Self.export(other, policy: Self.policy, key: "other-key-0123456789abcdef").1
        for table in ["public.customers.copy", "public.orders.copy", "public.tickets.copy"] {
            #expect(a[table] == b[table], "\(table)")
        }
        #expect(a["public.customers.copy"] != c["public.customers.copy"])
        #expect(a["public.orders.copy"] != c["public.orders.copy"], "the foreign key follows the key too")
    }

    @Test("strict: a column the policy does not name stops the export, naming it, and nothing is written")
    func strictRefusal() async throws {
        let db = try await Self.makeShop(customers: 50)
        defer { Task { await Self.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-exports")
        let env = try Self.environment(db, store: dir)
        let policy = Self.policy.replacingOccurrences(of: "    zip: {rule: mask, keep_first: 2, keep_last: 0}\n", with: "")
        await #expect(throws: JobError.self) { _ = try await Self.export(env, policy: policy, key: "k-0123456789abcdef") }
        do { _ = try await Self.export(env, policy: policy, key: "k-0123456789abcdef") } catch {
            #expect("\(error)".contains("tables.public.customers: strict policy, and no rule for column(s) zip"), "\(error)")
        }
        let (_, store) = try env.store(nil)
        #expect(try await store.list(prefix: "exports/").filter { $0.key != ExportKeyRecord.key }.isEmpty)
    }

    /// One table of `columns` filled by `insert`, in a database whose default DateStyle is
    /// `SQL, DMY` (dates read back as 23/04/1987 unless a session says otherwise).
    static func makeOdd(_ columns: String, insert: String) async throws -> String {
        let name = "dbqt_odd_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        _ = try await admin.execute("ALTER DATABASE \(name) SET datestyle = 'SQL, DMY'")
        await admin.close()
        let db = try await PostgresConnection.connect(server.replacingDatabase(name), logger: logger)
        _ = try await db.execute("CREATE TABLE people (\(columns)); \(insert)")
        await db.close()
        return name
    }

    @Test("leaks closed: dates under DateStyle 'SQL, DMY' are noised, bigints past 2^62 hashed, numeric[] refused for generalize, names nulled in their column redacted in free text")
    func noPassThrough() async throws {
        let db = try await Self.makeOdd("id bigint PRIMARY KEY, born date, big bigint, scores numeric[], name text, note text", insert: """
            INSERT INTO people SELECT i, date '1950-01-01' + i * 7, (4611686018427387904 + i * 1000003) * (CASE WHEN i % 2 = 0 THEN -1 ELSE 1 END),
                   ARRAY[i * 1.5, i * 2.5]::numeric[], 'Zebediah' || chr(65 + i % 26) || 'Quonsett', 'met Zebediah' || chr(65 + i % 26) || 'Quonsett today'
              FROM generate_series(1, 500) i;
            """)
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let originals = try await { () async throws -> [[String?]] in
            let c = try await PostgresConnection.connect(Self.server.replacingDatabase(db), logger: Self.logger)
            defer { Task { await c.close() } }
            _ = try await c.execute("SET datestyle = 'ISO'")
            return try await c.query("SELECT id::text, big::text, name FROM people").rows.map(\.values)
        }()
        let policy = """
            strict: true
            tables:
              public.people:
                id: keep
                born: {rule: noise, days: 30}
                big: hash
                scores: null
                name: null
                note: {rule: redact, values: [public.people.name]}
            """
        let (_, objects) = try await Self.export(env, policy: policy, key: "k-0123456789abcdef")
        let data = objects.filter { $0.key.hasPrefix("public.people") }.values.flatMap { $0 }
        let rows = Self.rows(data)
        #expect(rows.count == 500)
        // Hashed bigints and names (nulled in their column, quoted in notes): none anywhere.
        var leaked: [String] = []
        for row in originals {
            for value in row.dropFirst().compactMap({ $0 }) where Self.contains(data, value) { leaked.append(value) }
        }
        #expect(leaked.isEmpty, "\(leaked.count) originals in the export, e.g. \(leaked.prefix(3))")
        // Dates: read as ISO and moved, every one (noise never leaves a date where it was;
        // under DMY every one passed through unchanged before).
        let born = Dictionary(uniqueKeysWithValues: try await { () async throws -> [(String, String)] in
            let c = try await PostgresConnection.connect(Self.server.replacingDatabase(db), logger: Self.logger)
            defer { Task { await c.close() } }
            _ = try await c.execute("SET datestyle = 'ISO'")
            return try await c.query("SELECT id::text, born::text FROM people").rows.map { ($0[0]!, $0[1]!) }
        }())
        let unchanged = rows.filter { born[$0[0] ?? ""] == $0[1] }.count
        #expect(rows.allSatisfy { ($0[1] ?? "").contains("-") && !($0[1] ?? "").contains("/") }, "dates exported in ISO form")
        #expect(unchanged == 0, "\(unchanged) of 500 dates unchanged")
        let dmy = try await { () async throws -> [String] in
            let c = try await PostgresConnection.connect(Self.server.replacingDatabase(db), logger: Self.logger)
            defer { Task { await c.close() } }
            return try await c.query("SELECT born::text FROM people").compactMap { $0[0] }
        }()
        #expect(dmy.first?.contains("/") == true, "the database's default DateStyle is DMY: \(dmy.first ?? "")")
        #expect(!dmy.contains { Self.contains(data, $0) }, "a DMY original passed through")

        // generalize on numeric[] is refused (an array is not a number), naming the column.
        let refused = policy.replacingOccurrences(of: "scores: null", with: "scores: {rule: generalize, width: 10}")
        do {
            _ = try await Self.export(env, policy: refused, key: "k-0123456789abcdef")
            Issue.record("generalize on numeric[] was accepted")
        } catch {
            #expect("\(error)".contains("scores"), "\(error)")
        }
    }

    @Test("domains are masked as the type they stand on, also a domain over a domain")
    func domains() async throws {
        let name = "dbqt_dom_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(Self.server.raw, logger: Self.logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        defer { Task { await Self.drop(name) } }
        let db = try await PostgresConnection.connect(Self.server.replacingDatabase(name), logger: Self.logger)
        _ = try await db.execute("""
            CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');
            CREATE DOMAIN birth AS date;
            CREATE DOMAIN adult_birth AS birth CHECK (VALUE < date '2010-01-01');
            CREATE TABLE people (id integer PRIMARY KEY, email email_address, born adult_birth);
            INSERT INTO people SELECT i, 'dompers' || i || '@mail.example', date '1960-01-01' + i * 11 FROM generate_series(1, 200) i;
            """)
        await db.close()
        let env = try Self.environment(name, store: TestServices.temporaryDirectory("dbq-exports"))
        let policy = "strict: true\ntables:\n  public.people:\n    id: keep\n    email: {rule: hash, length: 20}\n    born: {rule: generalize, to: year}\n"
        let (manifest, objects) = try await Self.export(env, policy: policy, key: "k-0123456789abcdef")
        let rows = Self.rows(objects.filter { $0.key.hasPrefix("public.people") }.values.flatMap { $0 })
        #expect(rows.count == 200)
        #expect(rows.allSatisfy { !($0[1] ?? "").contains("dompers") && ($0[2] ?? "").hasSuffix("-01-01") }, "\(rows.prefix(2))")
        #expect(manifest.tables.first?.columns.map(\.type) == ["integer", "email_address", "adult_birth"], "the manifest keeps the column's own type")
    }

    @Test("a value a rule cannot read stops the export, naming the table, the column and the row, never the value; nothing is stored")
    func unreadableStops() async throws {
        let db = try await Self.makeOdd("id integer PRIMARY KEY, born date", insert: """
            INSERT INTO people SELECT i, date '1980-01-01' + i FROM generate_series(1, 300) i;
            UPDATE people SET born = date '12345-06-07' WHERE id = 250;
            """)
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let policy = "strict: true\ntables:\n  public.people:\n    id: keep\n    born: {rule: noise, days: 30}\n"
        do {
            _ = try await Self.export(env, .init(database: "main", tables: ["public.people"], policy: policy, codec: "none"), key: "k-0123456789abcdef")
            Issue.record("the export went on past a date noise cannot read")
        } catch {
            let message = "\(error)"
            #expect(message.contains("table public.people") && message.contains("column born") && message.contains("noise"), "\(message)")
            #expect(!message.contains("12345"), "the value is not shown: \(message)")
            #expect(message.contains("row "), "\(message)")
        }
        let (_, store) = try env.store(nil)
        #expect(try await store.list(prefix: "exports/").isEmpty, "nothing stored")
    }

    @Test("a policy table or reference the database does not have stops the export, naming it, and nothing is written")
    func unknownPolicyTable() async throws {
        let db = try await Self.makeShop(customers: 50)
        defer { Task { await Self.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-exports")
        let env = try Self.environment(db, store: dir)
        let policy = Self.policy + "\n  - {from: public.tickets.customer_email, to: public.custmers.email}\n"
        let misspelt = Self.policy.replacingOccurrences(of: "  public.orders:\n", with: "  public.order:\n")
        for (bad, name) in [(misspelt, "tables.public.order"), (policy, "public.custmers.email")] {
            do {
                _ = try await Self.export(env, .init(database: "main", tables: ["customers"], policy: bad, codec: "none"), key: "k-0123456789abcdef")
                Issue.record("exported with \(name) unknown")
            } catch {
                #expect("\(error)".contains("does not have: ") && "\(error)".contains(name), "\(error)")
            }
        }
        let (_, store) = try env.store(nil)
        #expect(try await store.list(prefix: "exports/").filter { $0.key != ExportKeyRecord.key }.isEmpty)
    }

    @Test("without a policy: the tables as they are, zstd-compressed, restorable by COPY")
    func plain() async throws {
        let db = try await Self.makeShop(customers: 100)
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, store: TestServices.temporaryDirectory("dbq-exports"))
        let (manifest, objects) = try await Self.export(env, policy: nil, key: "unused-key-0123456789", codec: "zstd")
        #expect(manifest.policyDigest == nil && manifest.keyFingerprint == nil)
        let compressed = try #require(objects["public.customers.copy.zst"])
        let decoder = try Decompressor(codec: .zstd)
        var plain: [UInt8] = []
        try decoder.decompress(compressed) { plain += [UInt8]($0) }
        try decoder.finish()
        #expect(Self.rows(plain).first?[1] == "person1@mail1.example")
        #expect(String(decoding: objects["schema.sql"] ?? [], as: UTF8.self).contains("CREATE TABLE public.customers"))
    }

    static func count(_ db: String, _ sql: String) async throws -> Int {
        let c = try await PostgresConnection.connect(server.replacingDatabase(db), logger: logger)
        defer { Task { await c.close() } }
        return try await c.query(sql).scalar.flatMap { Int($0) } ?? -1
    }

    static func emptyDatabase() async throws -> String {
        let name = "dbqt_import_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        return name
    }

    @Test("import of a masked export into a new database: every join holds, unique stays unique; modes and dry-run do what they say")
    func importModes() async throws {
        let source = try await Self.makeShop(customers: 500)
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(target) } }
        let store = TestServices.temporaryDirectory("dbq-exports")
        var setup = try Self.environment(source, store: store)
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        _ = try await Self.export(env, policy: Self.policy, key: "import-key-0123456789abcdef")
        func load(_ mode: ImportJob.Mode, createSchema: Bool = false, dryRun: Bool = false) async throws -> JSONValue? {
            try await ImportJob().run(.init(database: "staging", mode: mode, createSchema: createSchema, dryRun: dryRun), in: env, context: Self.context())
        }
        _ = try await load(.insert, createSchema: true)
        let joins = "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id"
        let byEmail = "SELECT count(*) FROM tickets t JOIN customers c ON c.email = t.customer_email"
        #expect(try await Self.count(target, joins) == Self.count(source, joins))
        #expect(try await Self.count(target, byEmail) == Self.count(source, byEmail))
        #expect(try await Self.count(target, "SELECT count(DISTINCT email) FROM customers") == 500)
        #expect(try await Self.count(target, "SELECT count(*) FROM customers WHERE email LIKE 'person%'") == 0)

        // insert again: refused, nothing changed.
        await #expect(throws: JobError.self) { _ = try await load(.insert) }
        #expect(try await Self.count(target, "SELECT count(*) FROM orders") == 1_500)
        // skip: nothing new, every row skipped.
        guard case .object(let skip)? = try await load(.skip), case .object(let tables)? = skip["tables"],
              case .object(let customers)? = tables["public.customers"] else { Issue.record("no report"); return }
        #expect(customers["skip"] == .number(500) && customers["insert"] == .number(0))
        // dry-run replace after a local change: reported, not done.
        _ = try await PostgresConnection.connect(Self.server.replacingDatabase(target), logger: Self.logger).execute("DELETE FROM tickets WHERE id <= 10")
        _ = try await load(.replace, dryRun: true)
        #expect(try await Self.count(target, "SELECT count(*) FROM tickets") == 240)
        // upsert: the deleted rows come back, the others are updated in place.
        guard case .object(let upsert)? = try await load(.upsert), case .object(let t2)? = upsert["tables"],
              case .object(let tickets)? = t2["public.tickets"] else { Issue.record("no report"); return }
        #expect(tickets["insert"] == .number(10) && tickets["update"] == .number(240))
        #expect(try await Self.count(target, "SELECT count(*) FROM tickets") == 250)
    }

    @Test("a target whose columns differ is refused, naming the difference, and nothing is imported")
    func importMismatch() async throws {
        let source = try await Self.makeShop(customers: 50)
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(target) } }
        var setup = try Self.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        _ = try await Self.export(env, policy: nil, key: "unused-key-0123456789")
        let db = try await PostgresConnection.connect(Self.server.replacingDatabase(target), logger: Self.logger)
        _ = try await db.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email varchar(10), extra text NOT NULL)")
        do {
            _ = try await ImportJob().run(.init(database: "staging", tables: ["customers"]), in: env, context: Self.context())
            Issue.record("imported into a different table")
        } catch {
            let text = "\(error)"
            #expect(text.contains("table public.customers in database 'staging' differs from the export"))
            #expect(text.contains("column email is character varying(10), the export's is text"))
            #expect(text.contains("column national_id is missing"))
            #expect(text.contains("column extra is NOT NULL without a default and not in the export"))
        }
        #expect(try await Self.count(target, "SELECT count(*) FROM customers") == 0)
        await db.close()
    }
}

/// A lock for async code: one holder at a time, waiters served in order.
actor KeyLock {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
