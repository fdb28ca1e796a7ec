import Anonymization
import DatabaseJobs
import DBQTestSupport
import Exports
import Foundation
import PostgresClient
import Queue
import Snapshots
import ObjectStorage
import JobTestSupport
import Testing

extension ExportTests {
    static let structuredPolicy = """
        strict: true
        tables:
          public.people:
            id: keep
            profile:
              rule: json
              other: null
              paths:
                $.email: {rule: email, length: 52, case: keep}
                $.phones[*]: {rule: hash, pattern: digits}
                $.address.zip: {rule: hash, length: 8}
                $.born: {rule: noise, days: 30, type: date}
            raw:
              rule: json
              other: drop
              paths:
                $.name: {rule: fake, kind: full_name}
            phones: {rule: elements, each: {rule: hash, pattern: digits}}
            emails: {rule: elements, each: {rule: email, length: 52, case: keep}}
            scores: {rule: elements, each: hash}
            grid: {rule: elements, each: {rule: hash, length: 12}}
            grade: keep
        """

    @Test("json/jsonb masked by path and arrays by element: no original anywhere in the export, and the import loads valid documents and arrays of the same shape")
    func structuredColumns() async throws {
        let source = try await Self.emptyDatabase()
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(target) } }
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await c.execute(#"""
            CREATE DOMAIN mail AS text CHECK (VALUE LIKE '%@%');
            CREATE SCHEMA "App";
            CREATE TYPE "App".mood AS ENUM ('ok', 'it''s bad');
            CREATE DOMAIN "App".grade AS "App".mood DEFAULT 'ok' NOT NULL;
            CREATE TABLE people (id integer PRIMARY KEY, profile jsonb NOT NULL, raw json, phones text[], emails mail[],
                                 scores bigint[], grid varchar(40)[][], grade "App".grade);
            INSERT INTO people SELECT i,
                   jsonb_build_object('email', 'Zeb' || i || '.Quonsett@Mail.example', 'phones', jsonb_build_array('+49 30 ' || (7000000 + i), '555-' || (80000000 + i)),
                                      'address', jsonb_build_object('zip', 'ZIP' || (20000 + i), 'city', 'Qcity' || i), 'born', (date '1900-01-01' + i * 67)::text,
                                      'vip', i % 2 = 0, 'notes', jsonb_build_array('Xnote' || i, 'tab' || E'\t' || 'Ynote' || i)),
                   ('{"name": "Zeb' || i || ' Quonsett", "secret": "Xsecret' || i || '", "n": ' || i || '}')::json,
                   ARRAY['+1 (555) ' || (3000000 + i), NULL, '0049-' || (9000000 + i)],
                   ARRAY[('Zeb' || i || '@Quon.example')::mail],
                   ARRAY[1000000000000000 + i * 7919, -(2000000000000000 + i * 7919)],
                   ARRAY[ARRAY['Xgrid' || i, 'q "uo" te\' || i], ARRAY['Wgrid' || i, NULL]],
                   (CASE WHEN i % 2 = 0 THEN 'ok' ELSE 'it''s bad' END)::"App".mood
              FROM generate_series(1, 300) i;
            """#)
        // Each original whole, as a reader would search for it (a bare 7-digit number could
        // turn up inside a hashed one by chance). The noised birth date is checked apart:
        // noise may leave a value where it was (an offset of zero).
        let originals = try await c.query("""
            SELECT 'Zeb' || i || '.Quonsett@Mail.example', '+49 30 ' || (7000000 + i), '555-' || (80000000 + i), 'ZIP' || (20000 + i), 'Qcity' || i,
                   'Xnote' || i, 'Ynote' || i, 'Zeb' || i || ' Quonsett', 'Xsecret' || i,
                   '+1 (555) ' || (3000000 + i), '0049-' || (9000000 + i), 'Zeb' || i || '@Quon.example',
                   (1000000000000000 + i * 7919)::text, (2000000000000000 + i * 7919)::text,
                   'Xgrid' || i, 'Wgrid' || i, 'q \"uo\" te\\' || i
              FROM generate_series(1, 300) i
            """).rows.flatMap { $0.values.compactMap { $0 } }
        await c.close()
        var setup = try Self.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        let (manifest, objects, result) = try await Self.export(env, .init(database: "main", policy: Self.structuredPolicy, codec: "none"),
                                                                 key: "structured-key-0123456789abcdef")
        // Every stored byte: objects, schema.sql, manifest; and the job's result.
        let stored = objects.values.flatMap { $0 } + Array("\(String(describing: result))".utf8)
        let leaked = originals.filter { Self.contains(stored, $0) }
        #expect(leaked.isEmpty, "\(leaked.count) of \(originals.count) originals stored, e.g. \(leaked.prefix(4))")
        #expect(manifest.rawColumns?.contains { $0.hasPrefix("public.people.id:") } == true)
        #expect(manifest.rawColumns?.contains { $0.hasPrefix("public.people.profile") } == false, "other: null keeps nothing: \(manifest.rawColumns ?? [])")

        // pg_dump --table leaves out the types the columns use; schema.sql carries them, and
        // a type the target already has is kept.
        let t = try await PostgresConnection.connect(Self.server.replacingDatabase(target), logger: Self.logger)
        _ = try await t.execute(#"CREATE SCHEMA "App"; CREATE TYPE "App".mood AS ENUM ('ok', 'it''s bad')"#)
        await t.close()
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: Self.context())
        #expect(try await Self.count(target, "SELECT count(*) FROM people") == 300)
        #expect(try await Self.count(target, #"SELECT count(*) FROM people WHERE grade::text = 'it''s bad'"#) == 150)
        #expect(try await Self.count(target, "SELECT count(*) FROM people WHERE profile->>'email' LIKE '%@%' AND jsonb_array_length(profile->'phones') = 2") == 300)
        #expect(try await Self.count(target, "SELECT count(*) FROM people WHERE profile->'address'->'city' = 'null'::jsonb AND profile->'vip' = 'null'::jsonb AND length(profile->'address'->>'zip') = 8") == 300)
        let moved = try await Self.count(target, "SELECT count(*) FROM people WHERE (profile->>'born')::date BETWEEN date '1900-01-01' + id * 67 - 30 AND date '1900-01-01' + id * 67 + 30 AND (profile->>'born')::date <> date '1900-01-01' + id * 67")
        #expect(moved > 250, "born is a date within ±30 days, moved: \(moved) of 300")
        #expect(try await Self.count(target, "SELECT count(*) FROM people WHERE raw::jsonb ? 'name' AND NOT raw::jsonb ? 'secret' AND NOT raw::jsonb ? 'n'") == 300, "other: drop")
        #expect(try await Self.count(target, "SELECT count(*) FROM people WHERE array_length(phones, 1) = 3 AND phones[2] IS NULL AND phones[1] LIKE '+_ (___) %'") == 300)
        #expect(try await Self.count(target, "SELECT count(*) FROM people WHERE emails[1] LIKE '%@%'") == 300, "the domain's check holds")
        #expect(try await Self.count(target, "SELECT count(*) FROM people WHERE array_ndims(grid) = 2 AND grid[2][2] IS NULL AND length(grid[1][1]) = 12") == 300)
        #expect(try await Self.count(target, "SELECT count(DISTINCT scores[1]) FROM people") == 300, "hash keeps distinct elements distinct")

        // A rule that cannot mask what a path holds: the export stops, naming the column, the
        // row and the path, and stores nothing.
        let refused = Self.structuredPolicy.replacingOccurrences(of: "$.address.zip: {rule: hash, length: 8}", with: "$.address: {rule: hash, length: 8}")
        let store = try TestServices.temporaryDirectory("dbq-exports")
        let strictEnv = try { var e = try Self.environment(source, store: store); e.configuration.databases["staging"] = nil; return e }()
        do {
            _ = try await Self.export(strictEnv, .init(database: "main", policy: refused, codec: "none"), key: "structured-key-0123456789abcdef")
            Issue.record("hash on an object was accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains("profile") && message.contains("$.address") && message.contains("row"), "\(message)")
            #expect(!originals.contains { message.contains($0) }, "\(message)")
        }
        let left = try FileManager.default.subpathsOfDirectory(atPath: store).filter { $0.hasSuffix(".copy") || $0.hasSuffix("manifest.json") }
        #expect(left.isEmpty, "stored: \(left)")
    }
}

extension ExportTests {
    @Test("import: two tables that reference each other load (their keys checked at the end, then as they were); a row that breaks one fails the import, nothing loaded")
    func importCycle() async throws {
        let source = try await Self.emptyDatabase()
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(target) } }
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await c.execute("""
            CREATE TABLE teams (id integer PRIMARY KEY, name text NOT NULL, captain integer);
            CREATE TABLE players (id integer PRIMARY KEY, team integer NOT NULL REFERENCES teams DEFERRABLE, name text NOT NULL);
            ALTER TABLE teams ADD CONSTRAINT teams_captain_fkey FOREIGN KEY (captain) REFERENCES players;
            INSERT INTO teams SELECT i, 'team ' || i, NULL FROM generate_series(1, 50) i;
            INSERT INTO players SELECT i, (i - 1) / 10 + 1, 'player ' || i FROM generate_series(1, 500) i;
            UPDATE teams SET captain = id * 10;
            """)
        await c.close()
        var setup = try Self.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        _ = try await Self.export(env, .init(database: "main", codec: "none"), key: "cycle-key-0123456789abcdef")
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: Self.context())
        #expect(try await Self.count(target, "SELECT count(*) FROM teams t JOIN players p ON p.id = t.captain AND p.team = t.id") == 50)
        // The keys are as they were: teams' not deferrable, players' deferrable, initially immediate.
        let states = try await { () async throws -> [String] in
            let t = try await PostgresConnection.connect(Self.server.replacingDatabase(target), logger: Self.logger)
            defer { Task { await t.close() } }
            return try await t.query("SELECT conname || ':' || condeferrable || ':' || condeferred FROM pg_constraint WHERE contype = 'f' ORDER BY 1").compactMap { $0[0] }
        }()
        #expect(states == ["players_team_fkey:true:false", "teams_captain_fkey:false:false"], "\(states)")
        // replace deletes and reloads both through the cycle.
        _ = try await ImportJob().run(.init(database: "staging", mode: .replace), in: env, context: Self.context())
        #expect(try await Self.count(target, "SELECT count(*) FROM players") == 500)
        // A captain who is not a player: the deferred check fails the import, and it loads nothing.
        let t = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await t.execute("ALTER TABLE teams DROP CONSTRAINT teams_captain_fkey; UPDATE teams SET captain = 9999 WHERE id = 7")
        await t.close()
        let broken = try await Self.export(env, .init(database: "main", codec: "none"), key: "cycle-key-0123456789abcdef")
        let t2 = try await PostgresConnection.connect(Self.server.replacingDatabase(target), logger: Self.logger)
        _ = try await t2.execute("TRUNCATE players, teams")
        await t2.close()
        let failed = await #expect(throws: JobError.self) {
            _ = try await ImportJob().run(.init(database: "staging", export: broken.0.id), in: env, context: Self.context())
        }
        #expect(failed?.message.contains("break a foreign key") == true && failed?.message.contains("Nothing was imported") == true, "\(String(describing: failed))")
        #expect(try await Self.count(target, "SELECT count(*) FROM teams") == 0)
        #expect(try await Self.count(target, "SELECT count(*) FROM players") == 0)
    }
}

extension ExportSubsetTests {
    @Test("following references takes one statement per key, whatever the length of a chain: a 2,000-long self-reference is one recursive statement; a cycle through two tables settles; the closure matches the database's own")
    func followingPasses() async throws {
        let db = try await T.emptyDatabase()
        defer { Task { await T.drop(db) } }
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(db), logger: T.logger)
        _ = try await c.execute("""
            CREATE TABLE nodes (id integer PRIMARY KEY, parent integer REFERENCES nodes, other integer REFERENCES nodes, note text);
            INSERT INTO nodes SELECT i, NULL, NULL, 'n' || i FROM generate_series(1, 20000) i;
            UPDATE nodes SET parent = id - 1 WHERE id BETWEEN 2 AND 2000;      -- one chain of 2,000
            UPDATE nodes SET other = id + 5000 WHERE id BETWEEN 1000 AND 1010;  -- side branches
            UPDATE nodes SET parent = id - 1 WHERE id BETWEEN 6001 AND 6005;
            CREATE TABLE picks (id integer PRIMARY KEY, node integer NOT NULL REFERENCES nodes);
            INSERT INTO picks VALUES (1, 2000), (2, 15000);
            CREATE TABLE a (id integer PRIMARY KEY, b integer);
            CREATE TABLE b (id integer PRIMARY KEY, a integer REFERENCES a);
            ALTER TABLE a ADD FOREIGN KEY (b) REFERENCES b;
            INSERT INTO a SELECT i, NULL FROM generate_series(1, 100) i;
            INSERT INTO b SELECT i, i + 1 FROM generate_series(1, 99) i;
            UPDATE a SET b = id WHERE id < 100;
            """)
        let full = try await ExportCatalogQuery.load(c)
        let selection = try ExportSelection.resolve(full, tables: ["picks", "a"], conditions: ["picks": "id <= 2", "a": "id = 1"], followReferences: true)
        // Pure: nodes' two self-keys are one closure, after the key from picks; a and b repeat.
        let steps = selection.followingSteps
        #expect(steps.count == 3, "\(steps)")
        #expect(steps.contains { if case .closure(table: "public.nodes", let keys) = $0 { keys.count == 2 } else { false } })
        _ = try await c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        let (rows, statements) = try await selection.materialize(c)
        _ = try await c.execute("ROLLBACK")
        let expected = try await T.count(db, """
            WITH RECURSIVE chosen(id) AS (SELECT node FROM picks WHERE id <= 2
                UNION SELECT x FROM nodes n JOIN chosen ON n.id = chosen.id, LATERAL (VALUES (n.parent), (n.other)) v(x) WHERE x IS NOT NULL)
            SELECT count(*) FROM chosen
            """)
        #expect(expected == 2000 + 1 + 11, "the database's own closure: \(expected)")
        #expect(rows["public.nodes"] == Int64(expected), "\(rows)")
        #expect(rows["public.a"] == 100 && rows["public.b"] == 99, "\(rows)")
        // The chain cost one statement; the two-table cycle repeats its two keys until
        // settled (about a hundred rounds for a chain of a hundred through both).
        #expect(statements < 2 + 2 * 105, "\(statements) statements")
        await c.close()
    }
}

extension ExportTests {
    @Test("hash on an integer serial key and a smallint: the import loads every row, the smallints fit, and the serial's sequence stays far from its end")
    func hashedSerialKeys() async throws {
        let source = try await Self.emptyDatabase()
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(target) } }
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await c.execute("""
            CREATE TABLE accounts (id serial PRIMARY KEY, level smallint NOT NULL UNIQUE, name text NOT NULL);
            INSERT INTO accounts (level, name) SELECT (i - 2500)::smallint * 13, 'acct ' || i FROM generate_series(1, 5000) i;
            CREATE TABLE logins (id serial PRIMARY KEY, account integer NOT NULL REFERENCES accounts);
            INSERT INTO logins (account) SELECT 1 + i % 5000 FROM generate_series(1, 3000) i;
            """)
        await c.close()
        var setup = try Self.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        let policy = """
            strict: true
            tables:
              public.accounts: {id: hash, level: hash, name: {rule: hash, length: 52}}
              public.logins: {id: keep}
            """
        _ = try await Self.export(env, .init(database: "main", policy: policy, codec: "none"), key: "serial-key-0123456789abcdef")
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: Self.context())
        #expect(try await Self.count(target, "SELECT count(*) FROM accounts") == 5000)
        #expect(try await Self.count(target, "SELECT count(*) FROM logins l JOIN accounts a ON a.id = l.account") == 3000, "the reference inherits the hash")
        #expect(try await Self.count(target, "SELECT count(*) FROM accounts WHERE id BETWEEN 1 AND 5000") < 5000, "ids moved")
        let largest = try await Self.count(target, "SELECT max(id) FROM accounts")
        #expect(largest < 32_768, "ids below 2^15 stay below 2^15 (and larger ones under twice the largest): \(largest)")
        #expect(try await Self.count(target, "SELECT last_value FROM accounts_id_seq") == largest, "the sequence is moved past the ids, and no further")
        #expect(try await Self.count(target, "INSERT INTO accounts (level, name) SELECT min(v), 'new' FROM generate_series(-32768, 32767) v WHERE v NOT IN (SELECT level FROM accounts) RETURNING id") == largest + 1)
    }
}

extension ExportTests {
    @Test("an encrypted storage: an export and a snapshot hold no marker and no zstd frame; import and rollback read them with the key; without it both refuse, naming the fingerprint, and change nothing")
    func encryptedExportAndSnapshot() async throws {
        let source = try await Self.emptyDatabase()
        let target = try await Self.emptyDatabase()
        defer { Task { await Self.drop(source); await Self.drop(target) } }
        let marker = "MARKER-ENC-EXPORT-5521"
        let c = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await c.execute("CREATE TABLE notes (id integer PRIMARY KEY, body text); INSERT INTO notes SELECT g, '\(marker) ' || g FROM generate_series(1, 2000) g")
        await c.close()
        let id = UUID().uuidString.prefix(8).uppercased().replacingOccurrences(of: "-", with: "")
        let keyEnv = "DBQ_TEST_ENC_EXPORT_\(id)"
        setenv(keyEnv, String(repeating: "5a", count: 32), 1)
        defer { unsetenv(keyEnv) }
        let dir = TestServices.temporaryDirectory("dbq-enc-export")
        var storage = try JobFixtures.localStorage(path: dir)
        storage.encryption = .init(keyEnv: keyEnv)
        var setup = try JobFixtures.environment(main: source, storage: storage, lockWait: .seconds(2), logger: Self.logger)
        setup.configuration.databases["staging"] = try PostgresConnectionString(Self.server.replacingDatabase(target))
        let env = setup
        _ = try await Self.export(env, .init(database: "main", codec: "zstd"), key: "enc-export-key-0123456789abcdef")
        _ = try await Snapshots.SnapshotJob().run(.init(database: "main", tables: ["notes"]), in: env, context: JobFixtures.context("snapshot", logger: Self.logger))
        // As stored on disk: dbq's header on every data object, no zstd frame, no marker.
        var data = 0
        for path in FileManager.default.subpaths(atPath: dir) ?? [] where !path.hasSuffix("manifest.json") && !path.hasSuffix("key-fingerprint") {
            guard let bytes = FileManager.default.contents(atPath: dir + "/" + path), !bytes.isEmpty else { continue }
            data += 1
            #expect(Array(bytes.prefix(8)) == EncryptedObjects.magic, "\(path)")
            #expect(!String(decoding: bytes, as: UTF8.self).contains(marker), "\(path)")
        }
        #expect(data >= 3, "schema.sql, the export's rows and the snapshot's")
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: Self.context())
        #expect(try await Self.count(target, "SELECT count(*) FROM notes WHERE body LIKE 'MARKER-ENC-EXPORT-5521%'") == 2000)
        let d = try await PostgresConnection.connect(Self.server.replacingDatabase(source), logger: Self.logger)
        _ = try await d.execute("DELETE FROM notes WHERE id > 10")
        await d.close()
        // Without the key: the rollback refuses before it touches the table.
        unsetenv(keyEnv)
        let keyless = try JobFixtures.environment(main: source, storage: storage, lockWait: .seconds(2), logger: Self.logger)
        do {
            _ = try await Snapshots.RollbackJob().run(.init(database: "main", snapshot: "latest", confirm: true), in: keyless, context: JobFixtures.context("rollback", logger: Self.logger))
            Issue.record("rolled back without the key")
        } catch {
            #expect("\(error)".contains(EncryptedObjects.Key(bytes: [UInt8](repeating: 0x5a, count: 32)).fingerprint), "\(error)")
        }
        #expect(try await Self.count(source, "SELECT count(*) FROM notes") == 10, "the table untouched")
        setenv(keyEnv, String(repeating: "5a", count: 32), 1)
        _ = try await Snapshots.RollbackJob().run(.init(database: "main", snapshot: "latest", confirm: true), in: env, context: JobFixtures.context("rollback", logger: Self.logger))
        #expect(try await Self.count(source, "SELECT count(*) FROM notes") == 2000)
    }
}
