@testable import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import ObjectStorage
import Queue
import RedisClient
import RedisQueue
import Testing

/// Hosts made of network namespaces on a bridge (`deploy/local/partition.sh`), one of
/// them cut off while its jobs run. Needs root (namespaces): where the machine does not
/// allow them, the suite says so instead of running.
enum Namespaces {
    /// Whether this machine lets the tests make network namespaces (root, iproute2).
    static let allowed: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else { return false }
        let probe = try? Subprocess("/bin/sh", arguments: ["-c", "ip netns add dbq-probe-\(getpid()) && ip netns del dbq-probe-\(getpid())"], environment: ProcessInfo.processInfo.environment)
        return probe?.waitBlocking() == 0
    }()
}

@Suite("Hosts that partition: a worker's host cut off mid-job (network namespaces)", .serialized,
       .enabled(if: Namespaces.allowed, "network namespaces need root and iproute2 (ip netns)"))
struct PartitionTests {
    static let script = TestServices.projectRoot + "/deploy/local/partition.sh"

    func partition(_ arguments: String...) async throws {
        let p = try Subprocess("/bin/bash", arguments: [Self.script] + arguments, environment: ProcessInfo.processInfo.environment)
        let status = await p.wait()
        try #require(status == 0, "partition.sh \(arguments.joined(separator: " ")): \(p.standardError)")
    }

    @Test("h1 cut off while it runs a backup and three jobs: h2 runs them, h1's late completions and its manifest are refused by the fencing token, nothing lost, nothing done twice")
    func hostCutOff() async throws {
        try await partition("setup")
        let env = TestServices.devFile("partition.env")
        let redisURL = try #require(env["DBQ_PART_REDIS_URL"]), dbHost = try #require(env["DBQ_PART_DB_HOST"])
        let source = try await Fixtures.makeSource(rows: 1_000, randomMiB: 16)
        defer { Task { await Fixtures.drop(source) } }
        let dir = TestServices.temporaryDirectory("dbq-partition")
        // The database as the hosts reach it: through the bridge.
        var url = URLComponents(string: Fixtures.url(source).raw.hasPrefix("postgres") ? Fixtures.url(source).raw : TestServices.databaseURL)!
        url.host = dbHost
        url.path = "/" + source
        let config = dir + "/dbq.yaml"
        try "databases:\n  main: \"\(url.string!)\"\nstorages:\n  archive: {url: \"file://\(dir)/store\"}\n".write(toFile: config, atomically: true, encoding: .utf8)
        let queue = "partition-\(UUID().uuidString.prefix(8).lowercased())"
        let driver = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: Fixtures.logger)
        let jobsHold = dir + "/jobs-hold", dumpHold = dir + "/dump-hold"
        for path in [jobsHold, dumpHold] { FileManager.default.createFile(atPath: path, contents: nil) }
        defer { for path in [jobsHold, dumpHold] { try? FileManager.default.removeItem(atPath: path) } }
        var ids: [String] = []
        for _ in 0..<3 {
            ids.append(try await driver.push(JobEnvelope(kind: "sleep", version: 1, payload: try JSONValue(encoding: SleepJob.Payload(seconds: 0.05, holdWhileExists: jobsHold)),
                                                         queue: queue, maxAttempts: 3)).id)
        }
        let backup = try await driver.push(JobEnvelope(kind: "backup", version: 1, payload: .object(["database": .string("main"), "codec": .string("none")]),
                                                       queue: queue, maxAttempts: 3)).id
        let workerEnv = ["DBQ_REDIS_URL": redisURL, "DBQ_LOG_LEVEL": "info", "DBQ_CONFIG": config]
        func worker(_ host: String, _ extra: [String: String] = [:]) throws -> ChildProcess {
            let environment = workerEnv.merging(extra) { $1 }
            // Through the script: it names the namespaces for this checkout (two checkouts never share one).
            return try ChildProcess("/bin/bash", [Self.script, "run", host, "env"] + environment.map { "\($0)=\($1)" }
                                    + [TestServices.dbqBinary, "worker", "--queues", queue, "--id", host, "--lease", "10s", "--rescue-interval", "1s"])
        }
        let h1 = try worker("h1", ["DBQ_PG_DUMP": try await BackupFaultTests.slowDump(hold: dumpHold)])
        defer { h1.signal(SIGKILL) }
        // h1 holds all four: the three jobs wait on their hold, the dump stalls after 12 MB.
        #expect(try await eventually(.seconds(90)) {
            var running = 0
            for id in ids + [backup] where try await driver.job(id, queue: queue)?.state == "running" { running += 1 }
            let partial = (FileManager.default.enumerator(atPath: dir + "/store")?.allObjects as? [String] ?? []).contains { $0.contains("backups/main/") }
            return running == 4 && partial
        }, "h1 never held its jobs: \(h1.stderr.suffix(2000))")

        try await partition("cut", "h1")
        let h2 = try worker("h2")
        defer { h2.signal(SIGKILL) }
        // h1's leases lapse (10 s); h2 takes all four.
        #expect(try await eventually(.seconds(60)) {
            var taken = 0
            for id in ids + [backup] { if let r = try await driver.job(id, queue: queue), r.worker == "h2" { taken += 1 } }
            return taken == 4
        })
        try? FileManager.default.removeItem(atPath: jobsHold)
        try? FileManager.default.removeItem(atPath: dumpHold)
        #expect(try await eventually(.seconds(120)) {
            for id in ids + [backup] where try await driver.job(id, queue: queue)?.state != "succeeded" { return false }
            return true
        }, "h2: \(h2.stderr.suffix(2000))")

        // h1 comes back with its own copies finished or finishing: the fencing refuses them.
        try await partition("heal", "h1")
        #expect(try await eventually(.seconds(60)) {
            h1.stderr.components(separatedBy: "completion refused").count - 1 + h1.stderr.components(separatedBy: "lease lost").count - 1 >= 4
        }, "h1's late outcomes: \(h1.stderr.suffix(3000))")
        h1.signal(SIGTERM)
        h2.signal(SIGTERM)
        _ = await h1.wait(timeout: .seconds(30))
        _ = await h2.wait(timeout: .seconds(30))

        for id in ids + [backup] {
            let record = try await driver.job(id, queue: queue)
            #expect(record?.state == "succeeded" && record?.worker == "h2" && record?.attempt == 2, "\(String(describing: record))")
        }
        // One backup, h2's: h1's data objects may lie there, but never with a manifest.
        let store = try StorageSettings(url: try StorageURL("file://\(dir)/store")).open(logger: Fixtures.logger)
        let catalog = try await BackupCatalog.load(store)
        #expect(catalog.entries.count == 1, "manifests: \(catalog.entries.map(\.id))")
        #expect(catalog.entries.first?.manifest.job.attempt == 2)
        // Accepted completions: four, all h2's.
        func accepted(_ log: String) -> Int {
            for line in log.split(separator: "\n") where line.contains("worker stopped") {
                func field(_ key: String) -> Int { line.split(separator: " ").first { $0.hasPrefix(key + "=") }.flatMap { Int($0.dropFirst(key.count + 1)) } ?? 0 }
                return field("worker.finished") - field("worker.refused")
            }
            return -1
        }
        #expect(accepted(h2.stderr) == 4, "h2: \(h2.stderr.suffix(1000))")
        #expect(accepted(h1.stderr) == 0, "h1: \(h1.stderr.suffix(2000))")
        try await partition("teardown")
    }
}

