@testable import Migrations
import PostgresParser
import Testing

@Suite("Migration lint, transactions and plans (pure, PostgreSQL's own parser)")
struct MigrationLintTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var sql: String
        /// rule@line, in order; empty: no finding.
        var expected: [String]
        var testDescription: String { String(sql.prefix(60)) }
    }

    static let cases: [Case] = [
        // Each rule, firing.
        Case(sql: "DROP TABLE users;", expected: ["drop-table@1"]),
        Case(sql: "ALTER TABLE users DROP COLUMN email;", expected: ["drop-column@1"]),
        Case(sql: "DROP DATABASE old;", expected: ["drop-database@1", "missing-lock-timeout@1"]),
        Case(sql: "TRUNCATE users, orders;", expected: ["truncate@1", "truncate@1"]),
        Case(sql: "DELETE FROM users;", expected: ["delete-without-where@1"]),
        Case(sql: "UPDATE users SET active = true;", expected: ["update-without-where@1"]),
        Case(sql: "ALTER TABLE users ALTER COLUMN age TYPE bigint;", expected: ["column-type-change@1"]),
        Case(sql: "ALTER TABLE users ADD COLUMN tenant int NOT NULL;", expected: ["add-not-null-column-without-default@1"]),
        Case(sql: "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", expected: ["set-not-null@1"]),
        Case(sql: "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);", expected: ["constraint-without-not-valid@1"]),
        Case(sql: "ALTER TABLE orders ADD CONSTRAINT positive CHECK (total > 0);", expected: ["constraint-without-not-valid@1"]),
        Case(sql: "CREATE INDEX users_email ON users (email);", expected: ["create-index-without-concurrently@1"]),
        Case(sql: "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);", expected: ["create-index-without-concurrently@1"]),
        Case(sql: "DROP INDEX users_email;", expected: ["drop-index-without-concurrently@1"]),
        Case(sql: "BEGIN;\nCREATE INDEX CONCURRENTLY users_email ON users (email);\nCOMMIT;",
             expected: ["transaction-control@1", "concurrently-in-transaction@2", "transaction-control@3", "missing-lock-timeout@1"]),
        Case(sql: "ALTER TABLE users RENAME TO customers;", expected: ["rename-table@1"]),
        Case(sql: "ALTER TABLE users RENAME COLUMN name TO full_name;", expected: ["rename-column@1"]),
        Case(sql: "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();", expected: ["volatile-default@1"]),
        Case(sql: "ALTER TABLE users ADD COLUMN key uuid DEFAULT uuidv7();", expected: ["volatile-default@1"]),
        Case(sql: "CREATE INDEX CONCURRENTLY users_email ON users (email);", expected: ["missing-lock-timeout@1"]),
        // The safe recipes: nothing to say.
        Case(sql: "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY users_email ON users (email);", expected: []),
        Case(sql: "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT fk;", expected: []),
        Case(sql: "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT email_nn;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;", expected: []),
        // Another constraint validated, or the check of another column: the scan stays.
        Case(sql: "ALTER TABLE users ADD CONSTRAINT age_pos CHECK (age > 0) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT age_pos;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
             expected: ["set-not-null@3"]),
        Case(sql: "ALTER TABLE users ADD CONSTRAINT name_nn CHECK (name IS NOT NULL) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT name_nn;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
             expected: ["set-not-null@3"]),
        // Not validated yet: the check does not count.
        Case(sql: "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
             expected: ["set-not-null@2"]),
        Case(sql: "ALTER TABLE users ADD COLUMN tenant int NOT NULL DEFAULT 0;", expected: []),
        Case(sql: "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now();", expected: []),
        Case(sql: "DELETE FROM users WHERE id = 1; UPDATE users SET a = 1 WHERE id = 2;", expected: []),
        // What squawk got wrong (#349): a table created in the same file is new and empty.
        Case(sql: "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL);\nCREATE INDEX events_at ON events (at);\nALTER TABLE events ADD CONSTRAINT positive CHECK (id > 0);\nALTER TABLE events ADD COLUMN kind text NOT NULL;\nALTER TABLE events ALTER COLUMN at TYPE timestamp;", expected: []),
        Case(sql: "CREATE TABLE t (id int);\nDROP TABLE t;\nCREATE INDEX i ON x (a) ;", expected: ["create-index-without-concurrently@3"]),
        Case(sql: "CREATE INDEX CONCURRENTLY i ON t (a);\nDROP INDEX CONCURRENTLY old;\nSET lock_timeout TO '1s';", expected: []),
        // Allowed in the file: reported, not blocking.
        Case(sql: "-- dbq:allow drop-table\nDROP TABLE legacy;", expected: ["drop-table@2(allowed)"]),
        // The comment on a statement's own line allows that statement, not the next.
        Case(sql: "DROP TABLE a; -- dbq:allow drop-table\nDROP TABLE b;", expected: ["drop-table@1(allowed)", "drop-table@2"]),
        Case(sql: "DROP TABLE a;\n-- dbq:allow drop-table\nDROP TABLE b;", expected: ["drop-table@1", "drop-table@3(allowed)"]),
        // dbq's own safe recipe for a key: the unique index built CONCURRENTLY, then the constraint on it.
        Case(sql: "SET lock_timeout = '2s';\nCREATE UNIQUE INDEX CONCURRENTLY users_pk_idx ON users (id);\nALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pk_idx;", expected: []),
        // A table made by CREATE TABLE AS is new too.
        Case(sql: "CREATE TABLE archive AS SELECT * FROM orders;\nCREATE INDEX archive_at ON archive (at);", expected: []),
        // Columns whose values are computed for every existing row: the table is rewritten.
        Case(sql: "ALTER TABLE users ADD COLUMN seq bigserial;", expected: ["add-column-rewrites-table@1"]),
        Case(sql: "ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;", expected: ["add-column-rewrites-table@1"]),
        Case(sql: "ALTER TABLE users ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) STORED;", expected: ["add-column-rewrites-table@1"]),
        // Comments and strings that look like SQL are not statements.
        Case(sql: "/* DROP TABLE users; */ SELECT 'DELETE FROM users;';\n-- TRUNCATE users;", expected: []),
        // Schema-qualified names.
        Case(sql: "DROP TABLE billing.invoices;", expected: ["drop-table@1"]),
    ]

    @Test("every rule fires where it should and nowhere else", arguments: cases)
    func lint(_ c: Case) throws {
        let analysis = try MigrationAnalysis.analyze(c.sql, file: "0001_x.up.sql")
        #expect(analysis.findings.map { "\($0.rule.rawValue)@\($0.line)\($0.allowed ? "(allowed)" : "")" } == c.expected)
    }

    @Test("--allow allows a rule for the run; a warning never blocks")
    func allow() throws {
        let sql = "DROP TABLE a;\nCREATE INDEX CONCURRENTLY i ON t (x);"
        #expect(try MigrationAnalysis.analyze(sql, file: "f").blocking.map(\.rule) == [.dropTable])
        #expect(try MigrationAnalysis.analyze(sql, file: "f", allow: ["drop-table"]).blocking.isEmpty)
        let finding = try MigrationAnalysis.analyze("DROP TABLE a;", file: "0002_drop.up.sql").findings[0]
        #expect(finding.description.hasPrefix("0002_drop.up.sql:1: drop-table (danger): DROP TABLE public.a: deletes the table"))
        #expect(finding.description.contains("Safe: "))
    }

    @Test("transactional unless a statement cannot be: CONCURRENTLY, VACUUM, ALTER SYSTEM, databases")
    func transactional() throws {
        #expect(try MigrationAnalysis.analyze("CREATE TABLE a (id int); INSERT INTO a VALUES (1); ANALYZE a;", file: "f").transactional)
        for sql in ["CREATE INDEX CONCURRENTLY i ON t (a)", "DROP INDEX CONCURRENTLY i", "REINDEX INDEX CONCURRENTLY i", "VACUUM t",
                    "ALTER SYSTEM SET work_mem = '8MB'", "CREATE DATABASE x", "ALTER TABLE events DETACH PARTITION events_2020 CONCURRENTLY"] {
            let analysis = try MigrationAnalysis.analyze("SELECT 1;\n" + sql, file: "f")
            #expect(!analysis.transactional, "\(sql)")
            #expect(analysis.nonTransactionalReasons.first?.hasPrefix("line 2: ") == true, "\(sql)")
        }
    }

    @Test("the tables a file changes (for --snapshot): existing ones only, each once")
    func touched() throws {
        let analysis = try MigrationAnalysis.analyze("""
            CREATE TABLE fresh (id int);
            INSERT INTO fresh VALUES (1);
            UPDATE users SET a = 1 WHERE id = 1;
            ALTER TABLE shop.orders ADD COLUMN note text;
            DELETE FROM users WHERE id = 2;
            DROP TABLE legacy; -- dbq:allow drop-table
            """, file: "f")
        #expect(analysis.touchedTables == ["public.users", "shop.orders", "public.legacy"])
    }

    @Test("syntax errors name the line and column")
    func syntax() {
        #expect(throws: SQLSyntaxError(message: "syntax error at or near \"TABEL\"", line: 2, column: 8)) {
            _ = try MigrationAnalysis.analyze("SELECT 1;\nCREATE TABEL x (id int);", file: "f")
        }
    }

    @Test("statements split by the parser keep their text and first line; the last needs no semicolon")
    func split() throws {
        let statements = try SQLParser.parse("-- head\nCREATE TABLE a (s text DEFAULT ';');\n\n/* x; */ INSERT INTO a VALUES ($$;$$)")
        #expect(statements.map(\.type) == ["CreateStmt", "InsertStmt"])
        #expect(statements.map(\.line) == [2, 4])
        #expect(statements[1].text == "\n\n/* x; */ INSERT INTO a VALUES ($$;$$)")
    }

    static let files = [
        MigrationFile(version: "0001", name: "a", up: "CREATE TABLE a (id int);", down: "DROP TABLE a;"),
        MigrationFile(version: "0002", name: "b", up: "CREATE TABLE b (id int);"),
        MigrationFile(version: "0003", name: "c", up: "CREATE TABLE c (id int);", down: "DROP TABLE c;"),
    ]
    static func applied(_ file: MigrationFile, partial: Int? = nil) -> AppliedMigration {
        AppliedMigration(version: file.version, name: file.name, checksum: file.checksum, transactional: partial == nil,
                         state: partial == nil ? "applied" : "partial", statementsDone: partial ?? 0)
    }

    @Test("plan: pending in order, up to --to; a partial file resumes first")
    func plan() throws {
        #expect(try MigrationPlanner.pending(files: Self.files, applied: []).map(\.file.version) == ["0001", "0002", "0003"])
        #expect(try MigrationPlanner.pending(files: Self.files, applied: [Self.applied(Self.files[0])], target: "0002").map(\.file.version) == ["0002"])
        let resumed = try MigrationPlanner.pending(files: Self.files, applied: [Self.applied(Self.files[0]), Self.applied(Self.files[1], partial: 2)])
        #expect(resumed.map(\.file.version) == ["0002", "0003"])
        #expect(resumed.first?.resumeAt == 2)
    }

    @Test("plan refusals: a changed file, a missing file, a new file older than the newest applied (unless --out-of-order), a bad --to")
    func refusals() throws {
        var changed = Self.files
        changed[0].up += "\n-- edited"
        #expect(throws: MigrationPlanner.Refusal.self) { _ = try MigrationPlanner.pending(files: changed, applied: [Self.applied(Self.files[0])]) }
        do { _ = try MigrationPlanner.pending(files: changed, applied: [Self.applied(Self.files[0])]) } catch {
            #expect(error.description.hasPrefix("0001_a.up.sql changed after it was applied"))
        }
        #expect(throws: MigrationPlanner.Refusal.self) { _ = try MigrationPlanner.pending(files: Array(Self.files.dropFirst()), applied: [Self.applied(Self.files[0])]) }
        let gap = [Self.applied(Self.files[0]), Self.applied(Self.files[2])]
        do { _ = try MigrationPlanner.pending(files: Self.files, applied: gap); Issue.record("not refused") } catch {
            #expect(error.description.contains("0002_b.up.sql is new but older than the newest applied migration 0003"))
        }
        #expect(try MigrationPlanner.pending(files: Self.files, applied: gap, outOfOrder: true).map(\.file.version) == ["0002"])
        #expect(throws: MigrationPlanner.Refusal.self) { _ = try MigrationPlanner.pending(files: Self.files, applied: [], target: "9") }
        #expect(throws: MigrationPlanner.Refusal.self) { _ = try MigrationPlanner.pending(files: Self.files, applied: gap, target: "0001") }
    }

    @Test("revert: newest first by --steps or --to; a file without a down file, or whose up file changed since it was applied, cannot be reverted and says so")
    func revert() throws {
        let all = Self.files.map { Self.applied($0) }
        #expect(try MigrationPlanner.revert(files: Self.files, applied: [all[0], all[2]], steps: 2, to: nil).map(\.0.version) == ["0003", "0001"])
        #expect(try MigrationPlanner.revert(files: Self.files, applied: [all[0], all[2]], steps: nil, to: "0001").map(\.0.version) == ["0003"])
        do { _ = try MigrationPlanner.revert(files: Self.files, applied: all, steps: 2, to: nil); Issue.record("not refused") } catch {
            #expect(error.description == "0002_b has no down file (0002_b.down.sql): it cannot be reverted")
        }
        #expect(throws: MigrationPlanner.Refusal.self) { _ = try MigrationPlanner.revert(files: Self.files, applied: [], steps: nil, to: nil) }
        // An up file edited after it was applied: its down file may not undo what ran.
        let edited = MigrationFile(version: "0003", name: "c", up: "CREATE TABLE c (id bigint);", down: "DROP TABLE c;")
        do {
            _ = try MigrationPlanner.revert(files: [Self.files[0], Self.files[1], edited], applied: [all[2]], steps: 1, to: nil)
            Issue.record("a changed file was reverted")
        } catch {
            #expect(error.description.hasPrefix("0003_c.up.sql changed after it was applied"), "\(error)")
        }
    }

    @Test("file names: versions, names, down files, and every malformed name refused by name")
    func fileNames() throws {
        let files = try MigrationFiles.parse([("0002_b.up.sql", "B"), ("0001_a.up.sql", "A"), ("0001_a.down.sql", "-A"), ("10_c.up.sql", "C")])
        #expect(files.map(\.version) == ["0001", "0002", "10"])
        #expect(files[0].down == "-A")
        for (name, message) in [("0001_a.sql", "NNNN_name.up.sql"), ("a_0001.up.sql", "version of digits"), ("0001.up.sql", "version of digits"),
                                ("0003_x.down.sql", "has no 0003_x.up.sql")] {
            do { _ = try MigrationFiles.parse([(name, "x")]); Issue.record("\(name) accepted") } catch {
                #expect("\(error)".contains(message), "\(name): \(error)")
            }
        }
        do { _ = try MigrationFiles.parse([("0001_a.up.sql", "A"), ("1_b.up.sql", "B")]); Issue.record("duplicate accepted") } catch {
            #expect("\(error)".contains("the same version"))
        }
    }
}
