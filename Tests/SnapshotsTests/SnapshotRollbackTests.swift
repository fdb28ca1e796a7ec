import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import Logging
import ObjectStorage
import PostgresClient
import Queue
@testable import Snapshots
import Synchronization
import Testing

/// Real PostgreSQL, real stores (local and S3): a snapshot, damage, a rollback.
@Suite("Snapshots and rollback (real PostgreSQL)", .serialized)
struct SnapshotRollbackTests {
    static let logger = Logger(label: "dbq.test.snapshots")
    static var server: PostgresConnectionString { JobFixtures.server }

    enum StoreKind: String, CaseIterable, Sendable { case local, s3 }

    /// accounts (bigserial, a generated column, jsonb, bytea, nulls), entries (identity,
    /// → accounts), tags (self-referencing).
    static func makeDatabase() async throws -> String {
        let name = try await ScratchDatabase.create("dbqt_snap")
        let db = try await connect(name)
        _ = try await db.execute("""
            CREATE TABLE accounts (id bigserial PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0,
                                   doubled numeric GENERATED ALWAYS AS (balance * 2) STORED, opened timestamptz NOT NULL DEFAULT now(),
                                   attrs jsonb, photo bytea, note text);
            INSERT INTO accounts (owner, balance, attrs, photo, note)
              SELECT 'owner ' || i, i * 1.25, jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 3)),
                     CASE WHEN i % 4 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
                     CASE WHEN i % 5 = 0 THEN NULL ELSE E'tab\\there, newline\\nthere, ' || i END
              FROM generate_series(1, 3000) i;
            CREATE TABLE entries (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts,
                                  amount numeric(12,2) NOT NULL, at date NOT NULL);
            INSERT INTO entries (account_id, amount, at) SELECT (i % 3000) + 1, i % 500 - 250, date '2026-01-01' + i % 300 FROM generate_series(1, 9000) i;
            CREATE INDEX entries_at ON entries (at, amount DESC) WHERE amount > 0;
            CREATE TABLE tags (id int PRIMARY KEY, parent_id int REFERENCES tags, name text UNIQUE);
            INSERT INTO tags SELECT i, CASE WHEN i > 1 THEN i / 2 END, 'tag' || i FROM generate_series(1, 200) i;
            """)
        await db.close()
        return name
    }

    static func connect(_ database: String) async throws -> PostgresConnection { try await JobFixtures.connect(database) }
    static func drop(_ name: String) async { await ScratchDatabase.drop(name) }

    static func storage(_ kind: StoreKind) throws -> StorageSettings {
        switch kind {
        case .local:
            return StorageSettings(url: try StorageURL("file://" + TestServices.temporaryDirectory("dbq-snapshots")))
        case .s3:
            return StorageSettings(url: try StorageURL("s3://\(TestServices.s3Bucket)/snapshot-tests/\(UUID().uuidString)"),
                                   endpoint: TestServices.s3Endpoint, region: "us-east-1", addressing: .path,
                                   accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey, partSizeMiB: 5)
        }
    }

    static func environment(_ database: String, _ kind: StoreKind = .local) throws -> JobEnvironment {
        try JobFixtures.environment(main: database, storage: try storage(kind), lockWait: .seconds(2), logger: logger)
    }

    static func context(_ kind: String) -> JobContext { JobFixtures.context(kind, logger: logger) }

    static func snapshot(_ env: JobEnvironment, tables: [String]? = nil, schema: String? = nil) async throws -> String {
        let result = try await SnapshotJob().run(.init(database: "main", tables: tables, schema: schema, label: "test"), in: env, context: context("snapshot"))
        guard case .object(let fields)? = result, case .string(let id)? = fields["id"] else { throw JobError.permanent("no id") }
        return id
    }

    static func rollback(_ env: JobEnvironment, _ id: String, confirm: Bool? = true, dryRun: Bool? = nil, lockTimeoutMs: Int? = nil,
                         rebuildIndexesFrom: Int64? = nil) async throws -> [String: JSONValue] {
        let result = try await RollbackJob().run(.init(database: "main", snapshot: id, confirm: confirm, dryRun: dryRun, lockTimeoutMs: lockTimeoutMs,
                                                       rebuildIndexesFrom: rebuildIndexesFrom),
                                                 in: env, context: context("rollback"))
        guard case .object(let fields)? = result else { throw JobError.permanent("no result") }
        return fields
    }

    /// Every table's rows in key order, digested; and every owned sequence's state.
    static func state(_ database: String) async throws -> [String: String] {
        let db = try await connect(database)
        defer { Task { await db.close() } }
        var out: [String: String] = [:]
        for table in ["accounts", "entries", "tags"] {
            out[table] = try await db.query("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '') FROM \(table) t").scalar
        }
        for sequence in ["accounts_id_seq", "entries_id_seq"] {
            out[sequence] = try await db.query("SELECT last_value || ':' || is_called FROM \(sequence)").scalar
        }
        // The schema too: every constraint and index, by name and definition.
        out["constraints"] = try await db.query("SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated, '; ' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace").scalar
        out["indexes"] = try await db.query("SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'").scalar
        return out
    }

    static func damage(_ database: String) async throws {
        let db = try await connect(database)
        defer { Task { await db.close() } }
        _ = try await db.execute("""
            DELETE FROM entries WHERE id % 3 = 0;
            DELETE FROM accounts a WHERE id > 2900 AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.account_id = a.id);
            UPDATE accounts SET balance = balance + 1, note = 'changed' WHERE id % 7 = 0;
            INSERT INTO accounts (owner) SELECT 'new ' || i FROM generate_series(1, 50) i;
            INSERT INTO entries (account_id, amount, at) SELECT 1, 1, date '2027-01-01' FROM generate_series(1, 70);
            UPDATE tags SET parent_id = NULL, name = name || '!' WHERE id % 2 = 0;
            SELECT nextval('accounts_id_seq') FROM generate_series(1, 5);
            """)
    }

    @Test("snapshot → deletes, updates, inserts, sequence use → rollback: the same rows per table and the same sequence values", arguments: StoreKind.allCases)
    func roundTrip(_ kind: StoreKind) async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, kind)
        let before = try await Self.state(db)
        let id = try await Self.snapshot(env, schema: "public")

        let (_, store) = try env.store(nil)
        let entry = try await SnapshotCatalog.load(store).find(id)
        #expect(entry.manifest.tables.map(\.name) == ["accounts", "entries", "tags"])
        #expect(entry.manifest.tables.map(\.rows) == [3000, 9000, 200])
        #expect(entry.manifest.tables[0].columns.contains("doubled") == false)
        #expect(Set(entry.manifest.sequences.map(\.name)) == ["accounts_id_seq", "entries_id_seq"])
        #expect(entry.manifest.label == "test")

        try await Self.damage(db)
        let damaged = try await Self.state(db)
        #expect(damaged["accounts"] != before["accounts"] && damaged["entries"] != before["entries"] && damaged["tags"] != before["tags"])
        #expect(damaged["accounts_id_seq"] != before["accounts_id_seq"])

        // accounts and entries (3,000 and 9,000 rows) loaded without their indexes, tags with.
        let result = try await Self.rollback(env, String(id.prefix(20)), rebuildIndexesFrom: 1000)
        #expect(result["rows"] == .number(12_200))
        // accounts_pkey, entries_pkey, entries_at, entries_account_id_fkey.
        #expect(result["indexesRebuilt"] == .number(4))
        #expect(try await Self.state(db) == before)

        // The next key is the one after the snapshot's, and the generated column is computed again.
        let check = try await Self.connect(db)
        defer { Task { await check.close() } }
        #expect(try await check.query("INSERT INTO accounts (owner, balance) VALUES ('after', 2) RETURNING id, doubled").first.map { [$0[0], $0[1]] } == ["3001", "4.00"])
    }

    @Test("a rebuilt table keeps what index definitions leave out (tablespace, replica identity, CLUSTER mark, comments); a partitioned table's partitions over the threshold roll back with their inherited key and attached index in place")
    func rebuildKeepsExtras() async throws {
        let db = try await ScratchDatabase.create("dbqt_snap_extra")
        let tablespace = "dbqt_ts_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(Self.server.raw, logger: Self.logger)
        // An in-place tablespace (under pg_tblspc): no directory the server's user must own.
        _ = try await admin.execute("SET allow_in_place_tablespaces = on")
        _ = try await admin.execute("CREATE TABLESPACE \(tablespace) LOCATION ''")
        defer {
            Task {
                await Self.drop(db)
                _ = try? await admin.execute("DROP TABLESPACE IF EXISTS \(tablespace)")
                await admin.close()
            }
        }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE things (id bigint PRIMARY KEY USING INDEX TABLESPACE \(tablespace), code text NOT NULL, note text);
            CREATE UNIQUE INDEX things_code ON things (code) TABLESPACE \(tablespace);
            ALTER TABLE things REPLICA IDENTITY USING INDEX things_code;
            CREATE INDEX things_note ON things (note);
            ALTER TABLE things CLUSTER ON things_note;
            COMMENT ON INDEX things_note IS 'for the note search: it''s kept';
            COMMENT ON CONSTRAINT things_pkey ON things IS 'the key';
            INSERT INTO things SELECT i, 'c' || i, 'n' || i % 17 FROM generate_series(1, 3000) i;
            CREATE TABLE events (id bigint, at date NOT NULL, kind text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
            CREATE TABLE events_2026_01 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
            CREATE TABLE events_2026_02 PARTITION OF events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
            CREATE INDEX events_kind ON events (kind);
            INSERT INTO events SELECT i, date '2026-01-01' + i % 59, 'k' || i % 5 FROM generate_series(1, 4000) i;
            """)
        func catalog() async throws -> String? {
            try await c.query("""
                SELECT string_agg(concat_ws(' ', ic.relname, (SELECT spcname FROM pg_tablespace WHERE oid = ic.reltablespace), i.indisreplident, i.indisclustered,
                                            i.indisvalid, obj_description(ic.oid, 'pg_class'), (SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = ic.oid)), '; ' ORDER BY ic.relname)
                         || ' | ' || (SELECT relreplident::text FROM pg_class WHERE relname = 'things')
                         || ' | ' || (SELECT string_agg(conname || ' ' || coalesce(obj_description(oid, 'pg_constraint'), '-'), ', ' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace)
                FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid WHERE t.relnamespace = 'public'::regnamespace
                """).scalar
        }
        func rows() async throws -> String? {
            try await c.query("SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM things t) || (SELECT md5(string_agg(e::text, '|' ORDER BY id)) FROM events e)").scalar
        }
        let before = (try await catalog(), try await rows())
        #expect(before.0?.contains("things_code \(tablespace) t f t") == true, "\(before.0 ?? "")")
        let env = try Self.environment(db)
        let id = try await Self.snapshot(env, schema: "public")
        _ = try await c.execute("DELETE FROM things WHERE id % 2 = 0; DELETE FROM events WHERE id % 3 = 0; UPDATE events SET kind = 'x' WHERE id % 5 = 0")
        let result = try await Self.rollback(env, String(id.prefix(20)), rebuildIndexesFrom: 1000)
        #expect(result["rows"] == .number(7000), "\(result)")
        // things_pkey, things_code, things_note; the partitions' inherited keys and attached indexes stay.
        #expect(result["indexesRebuilt"] == .number(3), "\(result)")
        #expect(try await catalog() == before.0)
        #expect(try await rows() == before.1)
    }

    @Test("rows counted from PostgreSQL's own binary COPY (NULLs, empty strings, wide rows, a header extension) fed in any chunking; a cut or foreign stream is not counted as whole")
    func binaryCopyCounter() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let c = try await Self.connect(db)
        defer { Task { await c.close() } }
        var bytes: [UInt8] = []
        for try await chunk in c.copyOut("COPY (SELECT * FROM accounts UNION ALL SELECT 0, '', 0, NULL, now(), NULL, ''::bytea, NULL) TO STDOUT (FORMAT binary)") {
            bytes += chunk
        }
        for size in [1, 2, 3, 7, 19, 4096, bytes.count] {
            var counter = BinaryCopyCounter()
            var i = 0
            while i < bytes.count { try counter.feed(Array(bytes[i..<min(bytes.count, i + size)])); i += size }
            #expect(counter.finished && counter.rows == 3001, "chunks of \(size)")
        }
        var cut = BinaryCopyCounter()
        try cut.feed(Array(bytes.prefix(bytes.count / 2)))
        #expect(!cut.finished)
        // A header extension (flags, then its length and bytes) is skipped.
        var extended = BinaryCopyCounter()
        try extended.feed(Array(bytes.prefix(11)) + [0, 0, 0, 0, 0, 0, 0, 3, 9, 9, 9] + Array(bytes.dropFirst(19)))
        #expect(extended.finished && extended.rows == 3001)
        var foreign = BinaryCopyCounter()
        #expect(throws: BinaryCopyCounter.Malformed.self) { try foreign.feed(Array("1\tx\n".utf8)) }
    }

    @Test("a rollback from S3 copies the objects to a local staging folder and checks them before it locks; the folder is gone afterwards")
    func stagedFromS3() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db, .s3)
        let id = try await Self.snapshot(env, tables: ["tags"])
        try await Self.damage(db)
        let jobID = JobID.make()
        let messages = Mutex<[String]>([])
        let context = JobContext(id: jobID, kind: "rollback", queue: "test", attempt: 1, fencingToken: 1, logger: Self.logger, confirmLease: {},
                                 reportProgress: { progress in messages.withLock { $0.append(progress.message ?? "") } })
        guard case .object(let result)? = try await RollbackJob().run(.init(database: "main", snapshot: id, confirm: true), in: env, context: context) else {
            Issue.record("no result"); return
        }
        #expect(result["stagingNote"] == nil && result["lockedSeconds"] != nil && result["stagedSeconds"] != nil, "\(result)")
        let seen = messages.withLock { $0 }
        let downloaded = try #require(seen.firstIndex { $0.hasSuffix("tables downloaded") }, "\(seen)")
        let loaded = try #require(seen.firstIndex { $0.hasSuffix("tables loaded") }, "\(seen)")
        #expect(downloaded < loaded)
        #expect(!FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "/dbq-rollback-" + jobID), "the staging folder is removed")
        #expect(try await Self.state(db)["tags"] != nil)
    }

    @Test("a TRUNCATE of a table while the snapshot is still copying another waits for the snapshot: the table is saved with its rows, not empty")
    func concurrentTruncate() async throws {
        let db = try await ScratchDatabase.create("dbqt_snap_trunc")
        defer { Task { await Self.drop(db) } }
        let setup = try await Self.connect(db)
        _ = try await setup.execute("""
            CREATE TABLE a_big (id bigint PRIMARY KEY, pad text);
            INSERT INTO a_big SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 1000000) i;
            CREATE TABLE b_small (id int PRIMARY KEY);
            INSERT INTO b_small SELECT generate_series(1, 5000);
            """)
        await setup.close()
        let env = try Self.environment(db)
        let snapshot = Task { try await Self.snapshot(env, tables: ["a_big", "b_small"]) }
        // Once the snapshot is copying the big table, the small one is truncated.
        let watcher = try await Self.connect(db)
        defer { Task { await watcher.close() } }
        let copying = try await polled(.seconds(60), every: .milliseconds(10), {
            try await watcher.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %a_big%' AND state = 'active'").scalar == "1"
        }, until: { $0 })
        try #require(copying, "the snapshot was never seen copying a_big")
        let truncating = Task {
            let c = try await Self.connect(db)
            defer { Task { await c.close() } }
            _ = try await c.execute("TRUNCATE b_small")
        }
        let id = try await snapshot.value
        try await truncating.value
        let (_, store) = try env.store(nil)
        let entry = try await SnapshotCatalog.load(store).find(id)
        #expect(entry.manifest.tables.map(\.rows) == [1_000_000, 5000], "\(entry.manifest.tables.map { "\($0.name) \($0.rows)" })")
        #expect(try await watcher.query("SELECT count(*) FROM b_small").scalar == "0", "the TRUNCATE ran after the snapshot")
    }

    @Test("rollback keeps the application's triggers out: a BEFORE INSERT stamp and a TRUNCATE audit do not fire; triggers end as they were; a trigger added since refuses the rollback")
    func triggersOff() async throws {
        let db = try await ScratchDatabase.create("dbqt_snap_trig")
        defer { Task { await Self.drop(db) } }
        let setup = try await Self.connect(db)
        _ = try await setup.execute("""
            CREATE TABLE audit (what text);
            CREATE TABLE items (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT '2020-01-01');
            INSERT INTO items SELECT i, 'item ' || i, timestamptz '2020-01-01' + i * interval '1 hour' FROM generate_series(1, 1000) i;
            CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); NEW.name := NEW.name || ' (stamped)'; RETURN NEW; END $$;
            CREATE FUNCTION note_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES ('truncated ' || TG_TABLE_NAME); RETURN NULL; END $$;
            CREATE TRIGGER items_stamp BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION stamp();
            CREATE TRIGGER items_truncated AFTER TRUNCATE ON items FOR EACH STATEMENT EXECUTE FUNCTION note_truncate();
            ALTER TABLE items ENABLE ALWAYS TRIGGER items_truncated;
            """)
        let env = try Self.environment(db)
        func rows() async throws -> String? {
            try await setup.query("SELECT count(*) || ':' || md5(string_agg(i::text, '|' ORDER BY id)) FROM items i").scalar
        }
        func triggers() async throws -> String? {
            try await setup.query("SELECT string_agg(tgname || '=' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal").scalar
        }
        let before = try await rows(), triggersBefore = try await triggers()
        let id = try await Self.snapshot(env, tables: ["items"])
        _ = try await setup.execute("DELETE FROM items WHERE id % 2 = 0; UPDATE items SET name = 'changed' WHERE id % 3 = 0")
        #expect(try await rows() != before)
        let result = try await Self.rollback(env, id)
        #expect(result["rows"] == .number(1000))
        #expect(try await rows() == before, "restored rows as they were in the snapshot, no trigger stamped them")
        #expect(try await setup.query("SELECT count(*) FROM audit").scalar == "0", "the TRUNCATE trigger did not fire")
        let triggersAfter = try await triggers()
        #expect(triggersAfter == triggersBefore, "triggers as they were: \(triggersAfter ?? "")")

        // A trigger created since the snapshot: the shape differs, the rollback is refused.
        _ = try await setup.execute("CREATE TRIGGER items_more BEFORE DELETE ON items FOR EACH ROW EXECUTE FUNCTION stamp()")
        do {
            _ = try await Self.rollback(env, id)
            Issue.record("a rollback over a changed set of triggers went ahead")
        } catch {
            #expect("\(error)".contains("items_more"), "\(error)")
        }
        await setup.close()
    }

    @Test("a NOT DEFERRABLE foreign-key cycle between small tables: the rollback drops the key that points forward, loads, adds it back (checking every row)")
    func foreignKeyCycle() async throws {
        let db = try await ScratchDatabase.create("dbqt_snap_cycle")
        defer { Task { await Self.drop(db) } }
        let setup = try await Self.connect(db)
        _ = try await setup.execute("""
            CREATE TABLE authors (id int PRIMARY KEY, best_book int);
            CREATE TABLE books (id int PRIMARY KEY, author_id int NOT NULL REFERENCES authors);
            ALTER TABLE authors ADD CONSTRAINT authors_best_book_fkey FOREIGN KEY (best_book) REFERENCES books;
            INSERT INTO authors SELECT i, NULL FROM generate_series(1, 300) i;
            INSERT INTO books SELECT i, (i % 300) + 1 FROM generate_series(1, 900) i;
            UPDATE authors SET best_book = id;
            """)
        let env = try Self.environment(db)
        func state() async throws -> [String?] {
            [try await setup.query("SELECT md5(string_agg(a::text, '|' ORDER BY id)) FROM authors a").scalar,
             try await setup.query("SELECT md5(string_agg(b::text, '|' ORDER BY id)) FROM books b").scalar,
             try await setup.query("SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated, '; ' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace").scalar]
        }
        let before = try await state()
        let id = try await Self.snapshot(env, tables: ["authors", "books"])
        _ = try await setup.execute("UPDATE authors SET best_book = NULL WHERE id > 100; DELETE FROM books WHERE id > 600 AND id NOT IN (SELECT best_book FROM authors WHERE best_book IS NOT NULL)")
        #expect(try await state() != before)
        let result = try await Self.rollback(env, id)
        #expect(result["rows"] == .number(1200))
        #expect(try await state() == before, "rows and keys as they were")
        await setup.close()
    }

    @Test("a snapshot object altered in the store: the rollback stops at its checksum before it takes a lock (an application transaction holds the table meanwhile), names the object, and the tables keep their rows")
    func corruptObject() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let id = try await Self.snapshot(env, tables: ["tags"])
        let (_, store) = try env.store(nil)
        let entry = try await SnapshotCatalog.load(store).find(id)
        let object = try #require(entry.manifest.tables.first?.objects.first)
        let key = entry.folder + "/" + object.name
        var bytes = try await store.getBytes(key, limit: 64 << 20)
        bytes[bytes.count / 2] ^= 0xFF
        _ = try await store.put(key, bytes: bytes)
        try await Self.damage(db)
        let damaged = try await Self.state(db)
        // The application reads tags in an open transaction: a rollback that locked first
        // would wait for it (and give up on the lock, not on the object).
        let application = try await Self.connect(db)
        _ = try await application.execute("BEGIN; SELECT count(*) FROM tags")
        do {
            _ = try await Self.rollback(env, id, lockTimeoutMs: 200)
            Issue.record("a rollback from an altered object went ahead")
        } catch {
            #expect("\(error)".contains(object.name) && "\(error)".contains("nothing was rolled back"), "\(error)")
        }
        _ = try await application.execute("COMMIT")
        await application.close()
        #expect(try await Self.state(db) == damaged, "nothing was rolled back")
    }

    @Test("a changed schema refuses the rollback, naming each difference and the migration version; nothing changes")
    func schemaDrift() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let conn = try await Self.connect(db)
        defer { Task { await conn.close() } }
        _ = try await conn.execute("CREATE TABLE dbq_migrations (version text PRIMARY KEY); INSERT INTO dbq_migrations VALUES ('0001')")
        let id = try await Self.snapshot(env, tables: ["accounts", "public.entries"])
        _ = try await conn.execute("""
            ALTER TABLE accounts ADD COLUMN extra int; ALTER TABLE entries ALTER amount TYPE numeric(14,2);
            INSERT INTO dbq_migrations VALUES ('0002'); DELETE FROM entries WHERE id < 100
            """)
        let damaged = try await Self.state(db)
        let error = await #expect(throws: JobError.self) { _ = try await Self.rollback(env, id) }
        #expect(error?.isRetryable == false)
        let message = error?.message ?? ""
        #expect(message.contains("public.accounts: column \"extra\" was added"))
        #expect(message.contains("public.entries: column \"amount\" was 'numeric(12,2) not null', is now 'numeric(14,2) not null'"))
        #expect(message.contains("migration version 0001, the database is at 0002"))
        #expect(message.contains("Nothing was rolled back"))
        #expect(try await Self.state(db) == damaged)
    }

    @Test("a table outside the snapshot referencing one in it refuses the rollback, naming it; nothing changes")
    func outsideReference() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let id = try await Self.snapshot(env, tables: ["accounts"])
        try await Self.damage(db)
        let damaged = try await Self.state(db)
        let error = await #expect(throws: JobError.self) { _ = try await Self.rollback(env, id) }
        #expect(error?.message.contains("public.entries references public.accounts (constraint entries_account_id_fkey)") == true)
        #expect(try await Self.state(db) == damaged)
    }

    @Test("without --confirm refused; --dry-run shows rows now and in the snapshot and changes nothing")
    func confirmAndDryRun() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let id = try await Self.snapshot(env, tables: ["tags", "accounts", "entries"])
        try await Self.damage(db)
        let damaged = try await Self.state(db)
        let error = await #expect(throws: JobError.self) { _ = try await Self.rollback(env, id, confirm: nil) }
        #expect(error?.message.contains("add --confirm") == true)
        let report = try await Self.rollback(env, id, confirm: nil, dryRun: true)
        guard case .object(let tables)? = report["tables"], case .object(let entries)? = tables["public.entries"] else {
            Issue.record("no tables in \(report)")
            return
        }
        #expect(entries["snapshot"] == .number(9000))
        #expect(entries["now"] == .number(6070))
        #expect(try await Self.state(db) == damaged)
        let unknown = await #expect(throws: JobError.self) { _ = try await Self.rollback(env, "nope") }
        #expect(unknown?.message.contains("no snapshot 'nope' of database 'main'") == true)
    }

    @Test("a session holding a lock: the rollback waits its lock_timeout, retries, succeeds once the lock goes, and other sessions are not queued behind it meanwhile")
    func lockTimeoutRetry() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let env = try Self.environment(db)
        let before = try await Self.state(db)
        let id = try await Self.snapshot(env, tables: ["accounts", "entries", "tags"])
        try await Self.damage(db)

        // An application transaction that has written to accounts and stays open.
        let holder = try await Self.connect(db)
        defer { Task { await holder.close() } }
        _ = try await holder.execute("BEGIN; UPDATE accounts SET note = 'held' WHERE id = 1")
        let rollback = Task { try await Self.rollback(env, id, lockTimeoutMs: 200) }

        // Meanwhile another application session reads accounts: it must finish while the
        // holder still holds its lock (it is queued behind the rollback's lock request for
        // at most that request's lock_timeout, never until the holder ends).
        try await Task.sleep(for: .milliseconds(300))
        let reader = try await Self.connect(db)
        defer { Task { await reader.close() } }
        for _ in 0..<5 {
            #expect(try await reader.query("SELECT count(*) FROM accounts").scalar != nil)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await holder.query("SELECT note FROM accounts WHERE id = 1").scalar == "held")
        _ = try await holder.execute("COMMIT")

        let result = try await rollback.value
        guard case .number(let waits)? = result["lockWaits"] else { Issue.record("no lockWaits"); return }
        #expect(waits >= 1)
        #expect(try await Self.state(db) == before)
    }

    @Test("snapshot-retention keeps the newest N (and never the newest by age), deletes the rest's objects, sweeps a killed snapshot's folder")
    func retention() async throws {
        let db = try await Self.makeDatabase()
        defer { Task { await Self.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-snapshot-retention")
        var configuration = try DBQConfiguration.parse("", file: nil, environment: [:])
        configuration.databases = ["main": try PostgresConnectionString(Self.server.replacingDatabase(db))]
        configuration.storages = ["archive": StorageSettings(url: try StorageURL("file://" + dir))]
        let env = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: Self.logger, lockWait: .seconds(2))
        var ids: [String] = []
        for _ in 0..<3 {
            ids.append(try await Self.snapshot(env, tables: ["tags"]))
            try await Task.sleep(for: .milliseconds(1100))
        }
        // What a killed snapshot leaves: data, no manifest, hours old.
        let orphan = dir + "/snapshots/main/20260101T000000Z-killed"
        try FileManager.default.createDirectory(atPath: orphan, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: orphan + "/public.tags.bin.zst", contents: Data([1, 2, 3]))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-8 * 3600)], ofItemAtPath: orphan + "/public.tags.bin.zst")

        let dry = try await SnapshotRetentionJob().run(.init(database: "main", keepLast: 1, dryRun: true), in: env, context: Self.context("snapshot-retention"))
        #expect(dry.flatMap { if case .object(let o) = $0 { o["deleted"] } else { nil } } == .array(ids.prefix(2).map(JSONValue.string)))
        let (_, store) = try env.store(nil)
        #expect(try await SnapshotCatalog.load(store).entries.count == 3)

        _ = try await SnapshotRetentionJob().run(.init(database: "main", keepLast: 1), in: env, context: Self.context("snapshot-retention"))
        #expect(try await SnapshotCatalog.load(store).entries.map(\.id) == [ids[2]])
        let left = try await store.list(prefix: "snapshots/")
        #expect(left.allSatisfy { $0.key.contains(ids[2]) })
        let error = await #expect(throws: JobError.self) {
            _ = try await SnapshotRetentionJob().run(.init(database: "main"), in: env, context: Self.context("snapshot-retention"))
        }
        #expect(error?.message.contains("--keep-last") == true)
    }
}
