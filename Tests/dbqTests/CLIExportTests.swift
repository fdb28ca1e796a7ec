import DBQTestSupport
import Foundation
import Logging
import PostgresClient
import Testing

/// `dbq export plan`, `dbq anonymize scan` and the export options from the command line:
/// what a person reads, on a real database.
@Suite("dbq export plan and anonymize scan from the command line (real PostgreSQL)")
struct CLIExportTests {
    var dbq: String { TestServices.dbqBinary }
    let helper = CLIBackupTests()

    /// A small shop: customers, and orders referencing them.
    static func makeShop() async throws -> String {
        let server = try PostgresConnectionString(TestServices.databaseURL)
        let logger = Logger(label: "dbq.test.cli-export")
        let name = "dbqt_cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        let db = try await PostgresConnection.connect(server.replacingDatabase(name), logger: logger)
        _ = try await db.execute("""
            CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, full_name text, phone text, born date, note text);
            INSERT INTO customers SELECT i, 'person' || i || '@mail.example', 'Anna Schmidt' || chr(97 + i % 26), '+49 30 ' || (1000000 + i),
                   date '1960-01-01' + i, 'wrote from person' || i || '@mail.example yesterday' FROM generate_series(1, 200) i;
            CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric(10,2));
            INSERT INTO orders SELECT i, i % 200 + 1, i FROM generate_series(1, 600) i;
            ANALYZE;
            """)
        await db.close()
        return name
    }

    static func drop(_ name: String) async {
        let server = try! PostgresConnectionString(TestServices.databaseURL)
        if let admin = try? await PostgresConnection.connect(server.raw, logger: Logger(label: "dbq.test.cli-export")) {
            _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            await admin.close()
        }
    }

    @Test("scan writes a strict policy the plan accepts; the plan lists tables in dependency order with rows and rules")
    func scanThenPlan() async throws {
        let db = try await Self.makeShop()
        defer { Task { await Self.drop(db) } }
        let url = try PostgresConnectionString(TestServices.databaseURL).replacingDatabase(db)
        let (config, dir) = try helper.config(database: url)
        let env = ["DBQ_CONFIG": config]
        let policy = dir + "/policy.yaml"
        var r = try await runCommand(dbq, ["anonymize", "scan", "--database", "main", "-o", policy], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let text = try String(contentsOfFile: policy, encoding: .utf8)
        #expect(text.contains("strict: true"))
        #expect(text.contains("email: {rule: email, length: 52, case: keep}"), "\(text)")
        #expect(text.contains("full_name: {rule: fake, kind: full_name}"), "\(text)")
        #expect(text.contains("note: {rule: redact, email_length: 52}"), "\(text)")
        #expect(text.contains("customer_id: keep"), "\(text)")
        // Writing over it again is refused unless --force.
        r = try await runCommand(dbq, ["anonymize", "scan", "--database", "main", "-o", policy], environment: env)
        #expect(r.status == 64 && r.stderr.contains("exists; pass --force"), "\(r.stderr)")

        r = try await runCommand(dbq, ["export", "plan", "--database", "main", "--policy", policy], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let customers = try #require(r.stdout.range(of: "1. public.customers  ~200 rows"), "\(r.stdout)")
        let orders = try #require(r.stdout.range(of: "2. public.orders  ~600 rows"), "\(r.stdout)")
        #expect(customers.lowerBound < orders.lowerBound)
        #expect(r.stdout.contains("customer_id bigint"))
        r = try await runCommand(dbq, ["export", "plan", "--database", "main", "--tables", "orders", "--where", "orders=id <= 10",
                                       "--follow-references", "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let tables = plan?["tables"] as? [[String: Any]] ?? []
        #expect(tables.map { $0["name"] as? String } == ["public.customers", "public.orders"])
        #expect(tables.map { $0["rows"] as? Int } == [10, 10] && tables.allSatisfy { $0["rowsExact"] as? Bool == true })
    }

    @Test("wrong inputs: one line naming the thing (database, table, policy path, format, password), nothing exported")
    func refusals() async throws {
        let db = try await Self.makeShop()
        defer { Task { await Self.drop(db) } }
        let url = try PostgresConnectionString(TestServices.databaseURL).replacingDatabase(db)
        let (config, dir) = try helper.config(database: url)
        let env = ["DBQ_CONFIG": config]
        expectClear(try await runCommand(dbq, ["export", "plan", "--database", "nope"], environment: env), ["'nope'"])
        expectClear(try await runCommand(dbq, ["export", "plan", "--database", "main", "--tables", "nosuch"], environment: env),
                           ["no table 'nosuch' in the database", "public.customers"])
        let bad = dir + "/bad.yaml"
        try "tables:\n  public.customers:\n    emial: keep\n".write(toFile: bad, atomically: true, encoding: .utf8)
        expectClear(try await runCommand(dbq, ["export", "plan", "--database", "main", "--policy", bad], environment: env),
                           ["tables.public.customers.emial: no column 'emial' in public.customers"])
        expectClear(try await runCommand(dbq, ["export", "plan", "--database", "main", "--where", "orders=nonsense >"], environment: env),
                           ["orders"])
        // Run inline (no queue between): a refusal that let the export through would write to the store.
        expectClear(try await runCommand(dbq, ["run", "export", "--database", "main", "--format", "xml"], environment: env),
                           ["--format 'xml' is not a format; use copy, csv or jsonl"])
        expectClear(try await runCommand(dbq, ["run", "export", "--database", "main", "--all", "--tables", "orders"], environment: env),
                           ["--all and --tables exclude each other"])
        expectClear(try await runCommand(dbq, ["run", "export", "--database", "main", "--tables", "nosuch"], environment: env),
                           ["nosuch"])
        expectUnknownOption(try await runCommand(dbq, ["push", "import", "--database", "main", "--follow-references"], environment: env),
                            "--follow-references", help: "dbq push import")
        let wrong = url.replacingOccurrences(of: #"password=\S+"#, with: "password=wrong-password", options: .regularExpression)
        #expect(wrong.contains("password=wrong-password"))
        let (badConfig, _) = try helper.config(database: wrong)
        expectClear(try await runCommand(dbq, ["anonymize", "scan", "--database", "main"], environment: ["DBQ_CONFIG": badConfig]),
                           ["main"], hiding: ["wrong-password"])
        // The store of the configuration every command above used: not one object in it.
        let written = FileManager.default.enumerator(atPath: dir + "/backups")?.allObjects.compactMap { $0 as? String } ?? []
        #expect(written.filter { !$0.hasSuffix("/") && FileManager.default.fileExists(atPath: dir + "/backups/" + $0) }.allSatisfy {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: dir + "/backups/" + $0, isDirectory: &isDirectory) && isDirectory.boolValue
        }, "objects written by refused commands: \(written)")
    }
}
