import DBQTestSupport
import Foundation
import Testing

/// Backups from the command line: bad input gets one clear line, nothing half-written.
@Suite("dbq backups from the command line: bad input")
struct CLIBackupTests {
    var dbq: String { TestServices.dbqBinary }

    /// A dbq.yaml with database `main` (the test server) and a local storage.
    func config(database: String = TestServices.databaseURL, storage: String? = nil) throws -> (path: String, dir: String) {
        let dir = TestServices.temporaryDirectory("dbq-cli-backup")
        let path = dir + "/dbq.yaml"
        try """
            redis: "\(TestServices.redisURL)"
            databases:
              main: "\(database)"
            storages:
            \(storage ?? "  archive: {url: \"file://\(dir)/backups\"}")
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, dir)
    }


    @Test("push backup without --database, with an unknown one, and an option of another kind (each kind takes only its own)")
    func pushRefusals() async throws {
        let (path, _) = try config()
        let env = ["DBQ_CONFIG": path]
        expectClear(try await runCommand(dbq, ["push", "backup"], environment: env), ["backup needs --database NAME"])
        expectClear(try await runCommand(dbq, ["push", "backup", "--database", "nope"], environment: env),
                    ["unknown database 'nope'; configured: main"])
        // A storage name is checked at push time too, for every backup kind, before anything is queued.
        for kind in ["backup", "verify-backup", "retention"] {
            expectClear(try await runCommand(dbq, ["push", kind, "--database", "main", "--storage", "nosuch"], environment: env),
                        ["unknown storage 'nosuch'; configured: archive"])
        }
        let (several, _) = try config(storage: "  a: {url: \"file:///tmp/a\"}\n  b: {url: \"file:///tmp/b\"}")
        expectClear(try await runCommand(dbq, ["push", "backup", "--database", "main"], environment: ["DBQ_CONFIG": several]),
                    ["several storages are configured (a, b) and none is named 'archive'; say which with --storage"])
        expectUnknownOption(try await runCommand(dbq, ["push", "noop", "--codec", "gzip"], environment: env), "--codec", help: "dbq push job")
        expectClear(try await runCommand(dbq, ["push", "restore", "--database", "main"], environment: env), ["restore needs --target"])
        expectUnknownOption(try await runCommand(dbq, ["push", "backup", "--database", "main", "--min-age", "soon"], environment: env),
                            "--min-age", help: "dbq push backup")
        expectClear(try await runCommand(dbq, ["push", "retention", "--database", "main", "--min-age", "soon"], environment: env),
                    ["--min-age 'soon' is not a duration"])
        // --payload and the options mix: the options are set over the JSON.
        expectClear(try await runCommand(dbq, ["push", "backup", "--payload", #"{"database": "nope"}"#], environment: env),
                    ["unknown database 'nope'; configured: main"])
        expectClear(try await runCommand(dbq, ["push", "backup", "--payload", "[1]"], environment: env), ["the payload must be a JSON object"])
    }

    @Test("an unreachable database, refused S3 credentials, a missing backup id: one message each, no data left")
    func runtimeFailures() async throws {
        let (unreachable, dir1) = try config(database: "postgresql://backup:hunter2@127.0.0.1:\(TestServices.closedPort)/main")
        var r = try await runCommand(dbq, ["run", "backup", "--payload", #"{"database": "main"}"#, "--max-attempts", "1"],
                                     environment: ["DBQ_CONFIG": unreachable])
        expectClear(r, ["database 'main'", "127.0.0.1:\(TestServices.closedPort)"], hiding: ["hunter2"])
        #expect(!FileManager.default.fileExists(atPath: dir1 + "/backups/backups"))

        let wrongKey = """
              archive:
                url: "s3://\(TestServices.s3Bucket)/cli-refused"
                endpoint: "\(TestServices.s3Endpoint)"
                addressing: path
                access_key_id: "\(TestServices.s3AccessKey)"
                secret_access_key: "wrong-secret-value"
            """
        let (refused, _) = try config(storage: wrongKey)
        // Three attempts allowed, one made: no retry cures a refused secret.
        r = try await runCommand(dbq, ["run", "backup", "--payload", #"{"database": "main"}"#, "--max-attempts", "3"],
                                 environment: ["DBQ_CONFIG": refused])
        expectClear(r, ["SignatureDoesNotMatch", "not retryable", "AWS_SECRET_ACCESS_KEY"], hiding: ["wrong-secret-value"])
        #expect(!r.stderr.contains("3 attempts"), "\(r.stderr)")

        let (good, _) = try config()
        r = try await runCommand(dbq, ["run", "restore", "--payload", #"{"database": "main", "backup": "20200101T000000Z-gone", "target": "x_restore"}"#],
                                 environment: ["DBQ_CONFIG": good])
        expectClear(r, ["no backup '20200101T000000Z-gone' of database 'main'", "dbq backups list shows the ids"])
        r = try await runCommand(dbq, ["backups", "show", "20200101T000000Z-gone"], environment: ["DBQ_CONFIG": good])
        expectClear(r, ["no backup '20200101T000000Z-gone'"])
        r = try await runCommand(dbq, ["retention", "plan", "--database", "main", "--keep-last", "0", "--daily", "0", "--weekly", "0",
                                       "--monthly", "0", "--yearly", "0"], environment: ["DBQ_CONFIG": good])
        expectClear(r, ["keeps no backups"])
    }

    @Test("push export: a missing or bad policy file, a bad --where: one line each, nothing queued")
    func exportRefusals() async throws {
        let (path, dir) = try config()
        let env = ["DBQ_CONFIG": path]
        expectClear(try await runCommand(dbq, ["push", "export", "--database", "main", "--policy", dir + "/nosuch.yaml"], environment: env),
                    ["cannot read the policy file", "nosuch.yaml"])
        let bad = dir + "/bad.yaml"
        try "tables:\n  public.customers:\n    email: {rule: fake, kind: ssn}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        expectClear(try await runCommand(dbq, ["push", "export", "--database", "main", "--policy", bad], environment: env),
                    ["tables.public.customers.email.kind: 'ssn' is not a fake kind"])
        expectClear(try await runCommand(dbq, ["push", "export", "--database", "main", "--where", "no condition"], environment: env),
                    ["--where 'no condition' must be TABLE=CONDITION"])
        expectUnknownOption(try await runCommand(dbq, ["push", "backup", "--database", "main", "--policy", bad], environment: env),
                            "--policy", help: "dbq push backup")
    }
}
