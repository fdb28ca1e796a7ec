import DBQTestSupport
import Foundation
import Logging
import PostgresClient
import Testing

/// Maintenance, health and stats from the command line: exit codes a monitor can use, and
/// one clear line for bad input.
@Suite("dbq maintenance, health and stats from the command line")
struct CLIOperationsTests {
    var dbq: String { TestServices.dbqBinary }

    func env(database: String = TestServices.databaseURL) throws -> [String: String] {
        let dir = TestServices.temporaryDirectory("dbq-cli-ops")
        try """
            databases:
              main: "\(database)"
            storages:
              archive: {url: "file://\(dir)/store"}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        return ["DBQ_CONFIG": dir + "/dbq.yaml"]
    }

    @Test("health exits 2 when a check is critical (an int4 sequence at 95%), 0 when none is; bad input is one line, exit 1")
    func exitCodes() async throws {
        let logger = Logger(label: "dbq.test.cli")
        let server = try PostgresConnectionString(TestServices.databaseURL)
        let name = "dbqt_cliops_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        defer { Task { _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)"); await admin.close() } }
        let env = try env(database: server.replacingDatabase(name))
        let ok = try await runCommand(dbq, ["health", "--database", "main", "--json"], environment: env)
        #expect(ok.stdout.contains("\"critical\" : false"), "\(ok.stdout.prefix(300)) \(ok.stderr)")
        let db = try await PostgresConnection.connect(server.replacingDatabase(name), logger: logger)
        _ = try await db.execute("CREATE SEQUENCE orders_id_seq AS integer; SELECT setval('orders_id_seq', 2040109466)")
        await db.close()
        let critical = try await runCommand(dbq, ["health", "--database", "main"], environment: env)
        #expect(critical.status == 2, "\(critical.stdout) \(critical.stderr)")
        #expect(critical.stdout.contains("CRITICAL  sequences"))
        #expect(critical.stdout.contains("public.orders_id_seq (integer) at 95.0%"))

        // dbq.yaml's thresholds for the database: a sequence at 95% is only a warning under 0.99.
        let relaxed = TestServices.temporaryDirectory("dbq-cli-ops") + "/dbq.yaml"
        try "databases:\n  main: \"\(server.replacingDatabase(name))\"\nhealth: {main: {sequenceCritical: 0.99}}\n".write(toFile: relaxed, atomically: true, encoding: .utf8)
        let warned = try await runCommand(dbq, ["health", "--database", "main"], environment: ["DBQ_CONFIG": relaxed])
        #expect(warned.status == 0, "\(warned.stdout) \(warned.stderr)")
        #expect(warned.stdout.contains("WARNING   sequences"))
        expectClear(try await runCommand(dbq, ["health", "--database", "nope"], environment: env), ["unknown database 'nope'; configured: main"])
        expectClear(try await runCommand(dbq, ["push", "maintenance", "--database", "main", "--preflight", "later"], environment: env),
                    ["--preflight must be skip or wait"])
        expectClear(try await runCommand(dbq, ["push", "maintenance", "--database", "main", "--dead-ratio", "5"], environment: env),
                    ["--dead-ratio is a share from 0 to 1"])
        expectClear(try await runCommand(dbq, ["stats", "trends", "--database", "main"], environment: env), ["trends need two"])
        let unreachable = try self.env(database: "postgresql://nobody:wrong@127.0.0.1:\(TestServices.closedPort)/main")
        let failed = try await runCommand(dbq, ["health", "--database", "main"], environment: unreachable)
        #expect(failed.status == 1, "the checks could not run: exit 1")
    }
}
