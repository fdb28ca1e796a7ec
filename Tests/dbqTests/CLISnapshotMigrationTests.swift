import DBQTestSupport
import Foundation
import Testing

/// Snapshots and migrations from the command line: bad input gets one clear line.
@Suite("dbq snapshots and migrations from the command line: bad input")
struct CLISnapshotMigrationTests {
    var dbq: String { TestServices.dbqBinary }

    func setup(files: [String: String]) throws -> (env: [String: String], dir: String) {
        let dir = TestServices.temporaryDirectory("dbq-cli-migrate")
        try FileManager.default.createDirectory(atPath: dir + "/migrations", withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: dir + "/migrations/" + name, atomically: true, encoding: .utf8) }
        try """
            redis: "\(TestServices.redisURL)"
            databases:
              main: "\(TestServices.databaseURL)"
            storages:
              archive: {url: "file://\(dir)/store"}
            migrations: {main: "\(dir)/migrations"}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        return (["DBQ_CONFIG": dir + "/dbq.yaml"], dir)
    }


    @Test("rollback without --confirm, snapshot without tables, an unknown database or storage: one line each, nothing queued")
    func snapshotRefusals() async throws {
        let (env, _) = try setup(files: [:])
        expectClear(try await runCommand(dbq, ["push", "rollback", "--database", "main", "--snapshot", "latest"], environment: env), ["add --confirm, or --dry-run"])
        expectClear(try await runCommand(dbq, ["push", "rollback", "--database", "nope", "--snapshot", "latest", "--confirm"], environment: env),
                    ["unknown database 'nope'; configured: main"])
        expectClear(try await runCommand(dbq, ["push", "rollback", "--database", "main", "--snapshot", "x", "--confirm", "--storage", "s"], environment: env),
                    ["unknown storage 's'; configured: archive"])
        expectClear(try await runCommand(dbq, ["push", "snapshot", "--database", "main"], environment: env), ["snapshot needs --tables a,b or --schema NAME"])
        expectClear(try await runCommand(dbq, ["push", "snapshot", "--database", "main", "--tables", "a", "--schema", "b"], environment: env),
                    ["--schema and --tables exclude each other"])
        expectClear(try await runCommand(dbq, ["push", "snapshot-retention", "--database", "main"], environment: env), ["needs --keep-last N or --max-age"])
        expectClear(try await runCommand(dbq, ["snapshots", "show", "nope"], environment: env), ["no snapshot 'nope' in this storage"])
        expectClear(try await runCommand(dbq, ["run", "snapshot", "--database", "main", "--tables", "no_such_table"], environment: env),
                    ["database 'main' has no table 'no_such_table'"])
    }

    @Test("push rollback --snapshot latest names the snapshot that is latest at the push: one taken after does not change the job")
    func latestPinnedAtPush() async throws {
        let db = try await ScratchDatabase.create("dbqt_pin", setup: "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);")
        defer { Task { await ScratchDatabase.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-cli-pin")
        try """
            redis: "\(TestServices.redisURL)"
            databases:
              main: "\(ScratchDatabase.server.replacingDatabase(db))"
            storages:
              archive: {url: "file://\(dir)/store"}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let env = ["DBQ_CONFIG": dir + "/dbq.yaml"]
        let queue = "pin-\(UUID().uuidString.prefix(8).lowercased())"
        let first = try await runCommand(dbq, ["run", "snapshot", "--database", "main", "--tables", "t", "--label", "first"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        let pushed = try await runCommand(dbq, ["push", "rollback", "--database", "main", "--snapshot", "latest", "--confirm", "--queue", queue], environment: env)
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(pushed.stderr.contains("the latest snapshot of 'main' is ") && pushed.stderr.contains("(first)"), "\(pushed.stderr)")
        let second = try await runCommand(dbq, ["run", "snapshot", "--database", "main", "--tables", "t", "--label", "second"], environment: env)
        #expect(second.status == 0)
        let listed = try await runCommand(dbq, ["snapshots", "list", "--database", "main", "--json"], environment: env)
        let id = pushed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let job = try await runCommand(dbq, ["jobs", "show", id, "--queue", queue, "--json"], environment: env)
        let object = try JSONSerialization.jsonObject(with: Data(job.stdout.utf8)) as? [String: Any]
        let snapshot = (object?["payload"] as? [String: Any])?["snapshot"] as? String ?? ""
        #expect(snapshot != "latest" && !snapshot.isEmpty, "\(job.stdout)")
        #expect(pushed.stderr.contains(snapshot), "the job names the snapshot the push reported")
        #expect(listed.stdout.contains(snapshot), "\(listed.stdout)")
        _ = try await runCommand(dbq, ["jobs", "cancel", id, "--queue", queue], environment: env)
    }

    @Test("migration files: a bad name, a syntax error, a dangerous statement, an unknown rule, no folder: one line each")
    func migrationRefusals() async throws {
        let (badName, _) = try setup(files: ["1-init.sql": "SELECT 1;"])
        expectClear(try await runCommand(dbq, ["migrations", "lint", "--database", "main"], environment: badName), ["1-init.sql: a migration file is named NNNN_name.up.sql"])
        let (syntax, _) = try setup(files: ["0001_a.up.sql": "CREATE TABLE a (id int);\nCREAT TABLE b (id int);"])
        expectClear(try await runCommand(dbq, ["push", "migrate", "--database", "main"], environment: syntax),
                    ["0001_a.up.sql: line 2, column 1: syntax error at or near \"CREAT\""])
        let (danger, _) = try setup(files: ["0001_a.up.sql": "DROP TABLE legacy;"])
        let lint = try await runCommand(dbq, ["migrations", "lint", "--database", "main"], environment: danger)
        #expect(lint.status == 1)
        #expect(lint.stdout.contains("0001_a.up.sql:1: drop-table (danger): DROP TABLE public.legacy"))
        #expect(try await runCommand(dbq, ["migrations", "lint", "--database", "main", "--allow", "drop-table"], environment: danger).status == 0)
        expectClear(try await runCommand(dbq, ["push", "migrate", "--database", "main", "--allow", "drop-tables"], environment: danger),
                    ["--allow drop-tables is not a lint rule"])
        expectClear(try await runCommand(dbq, ["push", "migrate-revert", "--database", "main", "--steps", "1", "--to", "0001"], environment: danger),
                    ["give --steps N or --to VERSION, not both"])
        let (env, dir) = try setup(files: [:])
        expectClear(try await runCommand(dbq, ["push", "migrate", "--database", "other"], environment: env), ["unknown database 'other'; configured: main"])
        let text = try String(contentsOfFile: dir + "/dbq.yaml", encoding: .utf8).replacingOccurrences(of: "migrations: {main: \"\(dir)/migrations\"}", with: "")
        try text.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        expectClear(try await runCommand(dbq, ["push", "migrate", "--database", "main"], environment: env),
                    ["no migrations folder for database 'main': pass --dir FOLDER or add migrations: {main: jobs/migrations} to dbq.yaml"])
    }
}

/// `dbq run` of the artefact kinds end to end: a success, and a wrong password as one line
/// (both once crashed the process: an existential taken apart from a tuple and captured by
/// the lock's closure was used after it).
@Suite("dbq run snapshot, export, rollback, import: success and a wrong password")
struct CLIRunArtefactTests {
    var dbq: String { TestServices.dbqBinary }

    @Test("a snapshot and an export run inline succeed; with a wrong password each kind fails in one line, exit 1")
    func runs() async throws {
        let dir = TestServices.temporaryDirectory("dbq-cli-run")
        let wrong = TestServices.databaseURL.replacingOccurrences(of: ":dbq-local@", with: ":not-the-password@")
        try """
            databases:
              main: "\(TestServices.databaseURL)"
              wrong: "\(wrong)"
            storages:
              archive: {url: "file://\(dir)/store"}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let env = ["DBQ_CONFIG": dir + "/dbq.yaml"]
        let table = "dbqt_cli_run_\(UUID().uuidString.prefix(8).lowercased())"
        let setup = try await runCommand("/usr/bin/psql", ["-X", "-q", TestServices.databaseURL, "-c", "CREATE TABLE \(table) (id int PRIMARY KEY); INSERT INTO \(table) VALUES (1), (2)"])
        #expect(setup.status == 0, "\(setup.stderr)")
        defer { Task { _ = try? await runCommand("/usr/bin/psql", ["-X", "-q", TestServices.databaseURL, "-c", "DROP TABLE IF EXISTS \(table)"]) } }
        let snapshot = try await runCommand(dbq, ["run", "snapshot", "--database", "main", "--tables", table], environment: env)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stdout.contains("\"rows\":2"))
        let export = try await runCommand(dbq, ["run", "export", "--database", "main", "--tables", table], environment: env)
        #expect(export.status == 0, "\(export.stderr)")
        for arguments in [["snapshot", "--database", "wrong", "--tables", table], ["export", "--database", "wrong"],
                          ["rollback", "--database", "wrong", "--snapshot", "latest", "--confirm"], ["import", "--database", "wrong"],
                          ["backup", "--database", "wrong"]] {
            let r = try await runCommand(dbq, ["run"] + arguments, environment: env)
            #expect(r.status == 1, "\(arguments): exit \(r.status) \(r.stderr.prefix(300))")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(arguments): \(r.stderr.prefix(300))")
            #expect(r.stderr.contains("password authentication failed") || r.stderr.contains("no snapshot") || r.stderr.contains("no export"),
                    "\(arguments): \(r.stderr.prefix(300))")
            #expect(!r.stderr.contains("not-the-password"), "the password never shows")
        }
    }
}
