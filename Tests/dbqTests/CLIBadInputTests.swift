import DBQTestSupport
import Foundation
import Testing

/// The `dbq` binary as a person meets it: every bad input ends in one line naming the
/// problem, exit code 1 (64 for a wrong command line), and no stack trace.
@Suite("dbq command line: bad input")
struct CLIBadInputTests {
    var dbq: String { TestServices.dbqBinary }

    var services: [String: String] {
        ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_DATABASE_URL": TestServices.databaseURL,
         "DBQ_S3_ENDPOINT": TestServices.s3Endpoint, "AWS_ACCESS_KEY_ID": TestServices.s3AccessKey,
         "AWS_SECRET_ACCESS_KEY": TestServices.s3SecretKey]
    }

    /// One line on stderr, starting `dbq: error:`, containing every fragment, none of the secrets.
    func expectOneClearLine(_ result: CommandResult, _ fragments: [String], hiding secrets: [String] = [],
                            status: Int32 = 1, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count == 1, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.hasPrefix(status == 1 ? "dbq: error: " : "Error: ") == true, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(result.stderr.contains(fragment), "missing '\(fragment)' in: \(result.stderr)", sourceLocation: sourceLocation)
        }
        for secret in secrets {
            #expect(!result.stderr.contains(secret), "secret leaked: \(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(!result.stderr.contains("Fatal error"), sourceLocation: sourceLocation)
    }

    @Test("a URL given to --database, where a configured name belongs: told so at push and inline, its password masked", arguments: [["push", "backup"], ["run", "backup"]])
    func databaseURLForName(_ command: [String]) async throws {
        let secret = "s3cr3t-in-url"
        let r = try await runCommand(dbq, command + ["--database", "postgresql://postgres:\(secret)@127.0.0.1:1/app"], environment: services)
        #expect(r.status != 0, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("--database takes the name of a configured database, not a URL (postgresql://postgres:***@127.0.0.1:1/app)"), "\(r.stderr)")
        #expect(r.stderr.contains("DBQ_DATABASE_URL_MAIN"), "\(r.stderr)")
        #expect(!r.stderr.contains(secret), "secret leaked: \(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test("a storage URL that is not one")
    func badStorageURL() async throws {
        let r = try await runCommand(dbq, ["storage", "ls", "bucket/prefix"], environment: services)
        expectOneClearLine(r, ["is not a storage URL", "s3://bucket/prefix"])
    }

    @Test("bench backup without the aws CLI: named, with how to get it, before anything is made")
    func benchWithoutAWS() async throws {
        let r = try await runCommand(dbq, ["bench", "backup", "--aws", "/nonexistent/aws", "--scale", "1"], environment: services)
        expectOneClearLine(r, ["'/nonexistent/aws' was not found", "pip install awscli", "--aws PATH"])
    }

    @Test("bench backup with a scale out of range is a usage error")
    func benchBadScale() async throws {
        let r = try await runCommand(dbq, ["bench", "backup", "--scale", "0"], environment: services)
        #expect(r.status == 64)
        #expect(r.stderr.split(separator: "\n").first == "Error: --scale takes pgbench scales from 1 to 10000")
    }

    @Test("a malformed Redis URL")
    func badRedisURL() async throws {
        let r = try await runCommand(dbq, ["check", "--redis-url", "redis://:hunter2@127.0.0.1:99999"], environment: services)
        expectOneClearLine(r, ["invalid Redis URL", "port '99999'"], hiding: ["hunter2"])
    }

    @Test("Redis not listening")
    func redisUnreachable() async throws {
        let r = try await runCommand(dbq, ["check", "--redis-url", "redis://127.0.0.1:\(TestServices.closedPort)"], environment: services)
        expectOneClearLine(r, ["127.0.0.1:\(TestServices.closedPort)", "refused"])
    }

    @Test("a Redis Cluster none of whose seed nodes answers: every seed named")
    func clusterUnreachable() async throws {
        let port = TestServices.closedPort
        let r = try await runCommand(dbq, ["queues", "--redis-url", "redis+cluster://:pw@127.0.0.1:\(port),localhost:\(port)"], environment: services)
        expectOneClearLine(r, ["any of 127.0.0.1:\(port), localhost:\(port)", "no node of the cluster answers", "refused"])
    }

    @Test("Redis refusing the password")
    func redisWrongPassword() async throws {
        let url = TestServices.redisURL.replacingOccurrences(of: "dbq-local@", with: "not-the-password@")
        let r = try await runCommand(dbq, ["check", "--redis-url", url], environment: services)
        expectOneClearLine(r, ["authentication refused"], hiding: ["not-the-password"])
    }

    @Test("PostgreSQL refusing the password")
    func postgresWrongPassword() async throws {
        let url = TestServices.databaseURL.replacingOccurrences(of: ":dbq-local@", with: ":not-the-password@")
        let r = try await runCommand(dbq, ["check", "--database-url", url], environment: services)
        expectOneClearLine(r, ["password authentication failed"], hiding: ["not-the-password"])
    }

    @Test("a malformed PostgreSQL URL")
    func postgresBadURL() async throws {
        let r = try await runCommand(dbq, ["check", "--database-url", "postgresql://u:hunter2@host:port/db"], environment: services)
        expectOneClearLine(r, ["invalid PostgreSQL connection string"], hiding: ["hunter2"])
    }

    @Test("S3 refusing the secret")
    func s3WrongSecret() async throws {
        var environment = services
        environment["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
        let r = try await runCommand(dbq, ["storage", "ls", "s3://\(TestServices.s3Bucket)"], environment: environment)
        expectOneClearLine(r, ["AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch", "403"], hiding: ["not-the-secret"])
    }

    @Test("S3 with no credentials at all")
    func s3NoCredentials() async throws {
        let r = try await runCommand(dbq, ["storage", "ls", "s3://\(TestServices.s3Bucket)"], environment: services,
                               removing: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        expectOneClearLine(r, ["no S3 credentials", "AWS_ACCESS_KEY_ID"])
    }

    @Test("S3 endpoint not listening: a clear error after a few quick retries")
    func s3Unreachable() async throws {
        let started = Date()
        let r = try await runCommand(dbq, ["storage", "ls", "s3://\(TestServices.s3Bucket)", "--endpoint", "http://127.0.0.1:\(TestServices.closedPort)"],
                               environment: services)
        expectOneClearLine(r, ["cannot reach S3", "127.0.0.1:\(TestServices.closedPort)", "attempts"])
        #expect(Date().timeIntervalSince(started) < 30, "no hang")
    }

    @Test("a missing object")
    func missingObject() async throws {
        let r = try await runCommand(dbq, ["storage", "get", "s3://\(TestServices.s3Bucket)/no/such/object", "-"], environment: services)
        expectOneClearLine(r, ["no object at", "no/such/object"])
    }

    @Test("a file to upload that does not exist is a usage error")
    func missingFile() async throws {
        let r = try await runCommand(dbq, ["storage", "put", "/nonexistent/file", "s3://\(TestServices.s3Bucket)/x"], environment: services)
        #expect(r.status != 0)
        #expect(r.stderr.contains("/nonexistent/file"))
    }

    @Test("an unknown subcommand or option is a usage error (64)")
    func usage() async throws {
        let r = try await runCommand(dbq, ["storage", "ls"], environment: services)
        #expect(r.status == 64)
        #expect(r.stderr.contains("Missing expected argument"))
    }
}

@Suite("dbq command line: storage round trip")
struct CLIStorageTests {
    @Test("put, ls, get and rm through S3 and the local store", arguments: ["s3", "file"])
    func roundTrip(kind: String) async throws {
        let dbq = TestServices.dbqBinary
        let environment = ["DBQ_S3_ENDPOINT": TestServices.s3Endpoint, "AWS_ACCESS_KEY_ID": TestServices.s3AccessKey,
                           "AWS_SECRET_ACCESS_KEY": TestServices.s3SecretKey]
        let dir = TestServices.temporaryDirectory("dbq-cli")
        let base = kind == "s3" ? "s3://\(TestServices.s3Bucket)/cli-\(UUID().uuidString)" : "file://\(dir)/store"
        let source = dir + "/in.bin"
        let payload = Data((0..<(7 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try payload.write(to: URL(fileURLWithPath: source))

        let put = try await runCommand(dbq, ["storage", "put", source, "\(base)/dir/in.bin", "--part-size", "5"], environment: environment)
        #expect(put.status == 0, "\(put.stderr)")
        let list = try await runCommand(dbq, ["storage", "ls", base], environment: environment)
        #expect(list.stdout.contains("dir/in.bin"), "\(list.stdout) \(list.stderr)")
        let get = try await runCommand(dbq, ["storage", "get", "\(base)/dir/in.bin", dir + "/out.bin"], environment: environment)
        #expect(get.status == 0, "\(get.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/out.bin")) == payload)
        let rm = try await runCommand(dbq, ["storage", "rm", "\(base)/dir/in.bin"], environment: environment)
        #expect(rm.status == 0, "\(rm.stderr)")
        let again = try await runCommand(dbq, ["storage", "rm", "\(base)/dir/in.bin"], environment: environment)
        #expect(again.status == 1)
    }
}
