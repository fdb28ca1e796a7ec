import Backups
@testable import DatabaseJobs
import DBQTestSupport
@testable import Exports
import Foundation
import PostgresClient
import Queue
import Snapshots
import Testing

@Suite("Import with --snapshot (real PostgreSQL)", .serialized)
struct ImportSnapshotTests {
    typealias T = ExportTests

    @Test("import --snapshot: the target's tables are snapshotted first and named in the result; a rollback to it undoes the import")
    func importThenRollBack() async throws {
        let source = try await T.makeShop(customers: 300)
        let target = try await T.makeShop(customers: 50)
        defer { Task { await T.drop(source); await T.drop(target) } }
        var setup = try T.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(T.server.replacingDatabase(target))
        let env = setup
        _ = try await T.export(env, .init(database: "main", codec: "none"), key: "import-snapshot-key-0123456789")
        let before = try await T.count(target, "SELECT count(*) FROM customers")
        #expect(before == 50)

        let dry = try await ImportJob().run(.init(database: "staging", mode: .replace, dryRun: true, snapshot: true), in: env, context: T.context())
        guard case .object(let dryFields)? = dry else { Issue.record("no result"); return }
        #expect(dryFields["snapshot"] == .null, "a dry run takes no snapshot")

        let result = try await ImportJob().run(.init(database: "staging", mode: .replace, snapshot: true), in: env, context: T.context())
        guard case .object(let fields)? = result, case .string(let id)? = fields["snapshot"] else { Issue.record("no snapshot in \(String(describing: result))"); return }
        #expect(try await T.count(target, "SELECT count(*) FROM customers") == 300)
        let (_, store) = try env.store(nil)
        let snapshot = try await SnapshotCatalog.load(store).find(id)
        #expect(snapshot.manifest.database == "staging")
        #expect(Set(snapshot.manifest.tables.map(\.qualifiedName)) == ["public.customers", "public.orders", "public.tickets"])
        #expect(snapshot.manifest.label?.hasPrefix("before importing export ") == true)

        _ = try await RollbackJob().run(.init(database: "staging", snapshot: id, confirm: true), in: env, context: T.context())
        #expect(try await T.count(target, "SELECT count(*) FROM customers") == 50)
        #expect(try await T.count(target, "SELECT count(*) FROM orders") == 150)
    }
}

@Suite("Exports of tables with generated columns (real PostgreSQL)", .serialized)
struct GeneratedColumnTests {
    typealias T = ExportTests

    @Test("a generated column is not exported (COPY refuses it); the import computes it again")
    func generated() async throws {
        let source = try await T.emptyDatabase()
        let target = try await T.emptyDatabase()
        defer { Task { await T.drop(source); await T.drop(target) } }
        let c = try await PostgresConnection.connect(T.server.replacingDatabase(source), logger: T.logger)
        _ = try await c.execute("""
            CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, email_lower text GENERATED ALWAYS AS (lower(email)) STORED);
            INSERT INTO people (id, email) SELECT i, 'Person' || i || '@Example.COM' FROM generate_series(1, 50) i;
            """)
        await c.close()
        var setup = try T.environment(source, store: TestServices.temporaryDirectory("dbq-exports"))
        setup.configuration.databases["staging"] = try PostgresConnectionString(T.server.replacingDatabase(target))
        let env = setup
        let (manifest, _, _) = try await T.export(env, .init(database: "main", codec: "none"), key: "generated-key-0123456789abcdef")
        #expect(manifest.tables.first?.columns.map(\.name) == ["id", "email"])
        _ = try await ImportJob().run(.init(database: "staging", createSchema: true), in: env, context: T.context())
        #expect(try await T.count(target, "SELECT count(*) FROM people WHERE email_lower = lower(email)") == 50)
    }
}
