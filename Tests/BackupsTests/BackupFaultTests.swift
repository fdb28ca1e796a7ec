@testable import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import Logging
@testable import ObjectStorage
import Queue
import RedisClient
import RedisQueue
import Testing

/// Backups when things break: a worker killed mid-upload, an S3 that fails requests.
@Suite("Backups under faults: SIGKILL mid-backup, a failing S3 (real processes)", .serialized)
struct BackupFaultTests {
    /// A dbq.yaml naming the database and an S3 storage (5 MiB parts).
    static func writeConfig(database: String, storage: StorageSettings) throws -> String {
        try writeConfig(databaseURL: Fixtures.url(database).raw, storage: storage, to: TestServices.temporaryDirectory("dbq-config") + "/dbq.yaml",
                        extra: "part_size_mib: 5")
    }

    /// A dbq.yaml at `path` naming `main` at `databaseURL` and the S3 storage `archive`;
    /// `extra` lines go into the storage's mapping.
    static func writeConfig(databaseURL: String, storage: StorageSettings, to path: String, extra: String? = nil) throws -> String {
        guard case .s3(let bucket, let prefix) = storage.url else { throw CheckError("not S3") }
        try """
            databases:
              main: "\(databaseURL)"
            storages:
              archive:
                url: "s3://\(bucket)/\(prefix)"
                endpoint: "\(storage.endpoint!)"
                region: us-east-1
                addressing: path
                access_key_id: "\(TestServices.s3AccessKey)"
                secret_access_key: "\(TestServices.s3SecretKey)"
            """.appending(extra.map { "\n    " + $0 } ?? "").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// pg_dump that stops after 12 MB for as long as `hold` exists, so a test can kill its
    /// worker mid-upload however slow the machine is.
    static func slowDump(hold: String) async throws -> String {
        let path = TestServices.temporaryDirectory("dbq-slow-dump") + "/pg_dump"
        let pgDump = try await JobFixtures.pgDump()
        try """
            #!/bin/sh
            case "$1" in --version) exec '\(pgDump)' --version;; esac
            '\(pgDump)' "$@" | { head -c 12000000; while [ -e '\(hold)' ]; do sleep 0.1; done; cat; }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test("a worker SIGKILLed mid-backup: no manifest for that attempt, the retry completes, retention aborts the stale upload")
    func killedMidBackup() async throws {
        let source = try await Fixtures.makeSource(rows: 1_000, randomMiB: 16)
        defer { Task { await Fixtures.drop(source) } }
        let storage = try Fixtures.storage(.s3)
        let config = try Self.writeConfig(database: source, storage: storage)
        let queueName = "backup-kill-\(UUID().uuidString.prefix(8).lowercased())"
        let redis = try RedisConfiguration(url: TestServices.redisURL)
        let driver = RedisQueue(configuration: redis, logger: Fixtures.logger)
        let env = ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info"]
        let workerArguments = ["worker", "--config", config, "--queues", queueName, "--lease", "10s", "--rescue-interval", "1s", "--idle-wait", "500ms"]

        let hold = TestServices.temporaryDirectory("dbq-hold") + "/hold"
        FileManager.default.createFile(atPath: hold, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: hold) }
        let a = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "A"], environment: env.merging(["DBQ_PG_DUMP": try await Self.slowDump(hold: hold)]) { $1 })
        let pushed = try await driver.push(JobEnvelope(kind: "backup", version: 1, payload: .object(["database": .string("main"), "codec": .string("none")]),
                                                       queue: queueName, maxAttempts: 3))
        let store = try #require(try storage.open(logger: Fixtures.logger) as? S3Store)
        // Wait until A's multipart upload has begun (two parts in, then the dump stalls).
        let uploads = try await polled(.seconds(90), every: .milliseconds(200), { try await store.listUploads(prefix: "backups/main/") },
                                       until: { !$0.isEmpty })
        #expect(uploads.count == 1, "worker A never started its upload: \(a.stderr.suffix(2000))")
        a.signal(SIGKILL)
        // Let A's orphaned pg_dump pipeline go on: it writes into the dead worker's pipe and ends.
        try? FileManager.default.removeItem(atPath: hold)
        _ = await a.wait(timeout: .seconds(30))

        let b = try ChildProcess(TestServices.dbqBinary, workerArguments + ["--id", "B"], environment: env)
        defer { b.signal(SIGTERM) }
        let record = try await polled(.seconds(120), { try await driver.job(pushed.id, queue: queueName) }, until: { ["succeeded", "dead"].contains($0?.state ?? "") })
        #expect(record?.state == "succeeded", "job: \(String(describing: record)); B: \(b.stderr.suffix(3000))")
        #expect(record?.attempt == 2)
        #expect(record?.worker == "B")

        let catalog = try await BackupCatalog.load(store)
        #expect(catalog.entries.count == 1)
        #expect(catalog.entries.first?.manifest.job.attempt == 2)
        let blobs = catalog.entries.first?.manifest.tables.first(where: { $0.name == "blobs" })
        #expect(blobs?.rows == Int64(16 * 16))
        // A's upload is still pending: nobody completed or aborted it.
        #expect(try await store.listUploads(prefix: "backups/main/").count == 1)

        let backupEnv = JobEnvironment(configuration: try DBQConfiguration.load(path: config, environment: [:]), locks: driver, logger: Fixtures.logger)
        let policy = RetentionPolicy(keepLast: 5, daily: 0, weekly: 0, monthly: 0, yearly: 0, minAgeSeconds: 0, graceSeconds: 0)
        let report = try await Retention.apply(policy, database: "main", store: store, env: backupEnv, owner: "test", logger: Fixtures.logger)
        #expect(report.uploadsAborted.count == 1)
        #expect(report.deleted.isEmpty)
        #expect(try await store.listUploads(prefix: "backups/main/").isEmpty)
        #expect(try await BackupCatalog.load(store).entries.count == 1)
    }

    @Test("S3 answering 503 and resetting connections part of the time: the backup completes with retries, byte-exact")
    func flakyS3() async throws {
        let source = try await Fixtures.makeSource(rows: 2_000, randomMiB: 12)
        let target = Fixtures.freshName("flaky")
        defer { Task { await Fixtures.drop(source); await Fixtures.drop(target) } }
        let upstream = URL(string: TestServices.s3Endpoint)!
        let proxy = try ChildProcess("/usr/bin/env", ["python3", TestServices.projectRoot + "/deploy/local/fault-proxy.py",
                                                      "--upstream", "\(upstream.host!):\(upstream.port!)", "--fail", "0.2", "--reset", "0.1", "--seed", "5"])
        defer { proxy.signal(SIGKILL) }
        let port = try await polled(.seconds(5), every: .milliseconds(50), { proxy.stdout.split(separator: "\n").first.map(String.init) ?? "" },
                                    until: { !$0.isEmpty })
        let flaky = try Fixtures.storage(.s3, endpoint: "http://127.0.0.1:\(port)")
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: flaky)
        for codec in ["none", "zstd"] {
            _ = try await Fixtures.run(BackupJob(), in: env, .init(database: "main", codec: codec))
        }
        let faults = proxy.stderr.split(separator: "\n")
        #expect(faults.filter { $0.hasPrefix("503") }.count >= 3, "\(faults)")
        #expect(faults.filter { $0.hasPrefix("reset") }.count >= 1, "\(faults)")

        // Read back around the proxy: what S3 holds is what the manifests say.
        var direct = flaky
        direct.endpoint = TestServices.s3Endpoint
        let store = try direct.open(logger: Fixtures.logger)
        let catalog = try await BackupCatalog.load(store)
        #expect(catalog.entries.count == 2)
        for entry in catalog.entries {
            let bytes = try await store.getBytes(entry.dumpKey, limit: 256 << 20)
            #expect(SHA256Hex.of(bytes) == entry.manifest.dump?.sha256)
            #expect(Int64(bytes.count) == entry.manifest.dump?.size)
        }
        #expect(try await (store as! S3Store).listUploads(prefix: "backups/").isEmpty)
        // And a restore through the proxy: reads are retried too.
        _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: target, create: true))
        #expect(try await Fixtures.checksums(source) == Fixtures.checksums(target))
    }
}

struct CheckError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
