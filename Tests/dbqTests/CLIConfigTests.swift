import DBQTestSupport
import Foundation
import Testing

@Suite("dbq config against the real services")
struct CLIConfigTests {
    func write(_ yaml: String) throws -> String {
        let path = TestServices.temporaryDirectory("dbq-config") + "/dbq.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    var good: String {
        """
        redis: \(TestServices.redisURL)
        databases:
          main: \(TestServices.databaseURL)
        storages:
          archive: {url: "s3://\(TestServices.s3Bucket)/config-check", endpoint: "\(TestServices.s3Endpoint)",
                    access_key_id: \(TestServices.s3AccessKey), secret_access_key: \(TestServices.s3SecretKey)}
          local: file://\(TestServices.temporaryDirectory("dbq-config-store"))
        """
    }

    @Test("validate --check: every service answers")
    func valid() async throws {
        let path = try write(good)
        let result = try await runCommand(TestServices.dbqBinary, ["config", "validate", "--config", path, "--check"], removing: ["DBQ_REDIS_URL"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("1 database(s) and 2 storage(s) answer"))
        let shown = try await runCommand(TestServices.dbqBinary, ["config", "show", "--config", path])
        #expect(shown.status == 0)
        #expect(!shown.stdout.contains(TestServices.s3SecretKey) && !shown.stdout.contains("dbq-local@"))
    }

    @Test("validate --check names the storage whose secret is refused and the database whose password is")
    func refused() async throws {
        let bad = good.replacingOccurrences(of: TestServices.s3SecretKey, with: "not-the-secret")
            .replacingOccurrences(of: TestServices.databaseURL, with: TestServices.databaseURL.replacingOccurrences(of: ":dbq-local@", with: ":wrong-pw@"))
        let path = try write(bad)
        let result = try await runCommand(TestServices.dbqBinary, ["config", "validate", "--config", path, "--check"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("storages.archive: S3 refused the request signature"), "\(result.stderr)")
        #expect(result.stderr.contains("databases.main: PostgreSQL at"), "\(result.stderr)")
        #expect(result.stderr.contains("password authentication failed"))
        #expect(!result.stderr.contains("not-the-secret") && !result.stderr.contains("wrong-pw"))
    }

    @Test("commands take the Redis URL from dbq.yaml when no flag or DBQ_REDIS_URL gives one")
    func redisFromConfig() async throws {
        let path = try write("redis: \(TestServices.redisURL)\n")
        let queue = "cfg-\(UUID().uuidString.prefix(8).lowercased())"
        let pushed = try await runCommand(TestServices.dbqBinary, ["push", "noop", "--queue", queue],
                                          environment: ["DBQ_CONFIG": path], removing: ["DBQ_REDIS_URL"])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        let broken = try write("redis: [not, a, url]\n")
        let refused = try await runCommand(TestServices.dbqBinary, ["queues"], environment: ["DBQ_CONFIG": broken], removing: ["DBQ_REDIS_URL"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("redis: must be a URL string"))
        let none = try await runCommand(TestServices.dbqBinary, ["queues"], removing: ["DBQ_REDIS_URL", "DBQ_CONFIG"])
        #expect(none.status != 0)
        #expect(none.stderr.contains("no Redis URL"))
    }

    @Test("validate without --check: problems named, nothing contacted")
    func offline() async throws {
        let path = try write("redis: redis://h:99999\nstorages: {a: {url: 'ftp://x'}}\n")
        let result = try await runCommand(TestServices.dbqBinary, ["config", "validate", "--config", path], removing: ["DBQ_REDIS_URL"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("redis: invalid Redis URL: port '99999'"))
        #expect(result.stderr.contains("storages.a.url: 'ftp://x' is not a storage URL"))
    }
}
