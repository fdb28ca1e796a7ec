import ArgumentParser
import DBQSupport
import Foundation
import Logging
import Queue
import RedisClient
import RedisQueue

/// Queue throughput and costs, with real worker processes.
struct BenchQueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Push N noop jobs, drain them with W worker processes, and print rates, latency and costs.",
        discussion: """
            Prints: push rate (pipelined); drain rate (from starting the workers to the last \
            job succeeded); pickup latency p50/p99 on an idle queue (enqueue to start, by \
            Redis' clock); Redis commands per job while draining; Redis commands per second \
            per idle worker; worker peak RSS. Uses a fresh queue and deletes it afterwards.
            """)

    @OptionGroup var redis: RedisOptions
    @Option(help: "Jobs to push and drain.") var jobs = 100_000
    @Option(help: "Worker processes.") var workers = 1
    @Option(help: "Jobs in flight per worker.") var concurrency = 256
    @Option(help: "Jobs for the pickup-latency figure.") var latencySamples = 200
    @Option(help: "Seconds to count an idle worker's Redis commands.") var idleSeconds = 10

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let configuration = try redis.configuration()
            let driver = RedisQueue(configuration: configuration, logger: logger, connections: 4)
            try await driver.checkServer()
            let admin = try await RedisConnection.connect(configuration, logger: logger)
            let name = "bench-\(UUID().uuidString.prefix(8).lowercased())"
            print("dbq bench queue — \(jobs) noop jobs, \(workers) worker process(es) × \(concurrency) in flight")

            // Push.
            let envelopes = (0..<jobs).map { _ in JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: name) }
            var started = ContinuousClock.now
            for start in stride(from: 0, to: jobs, by: 1000) {
                _ = try await driver.pushMany(Array(envelopes[start..<min(jobs, start + 1000)]))
            }
            let pushSeconds = (ContinuousClock.now - started).seconds
            print(String(format: "push        %9.0f jobs/s   (pipelined, 1000 per round trip)", Double(jobs) / pushSeconds))

            // Drain.
            let before = try await commandsProcessed(admin)
            let callsBefore = try await clientCalls(admin)
            started = ContinuousClock.now
            let fleet = try (0..<workers).map { i in
                try spawnWorker(queue: name, extra: ["--concurrency", String(concurrency), "--exit-when-idle", "--id", "bench-\(i)"])
            }
            var polls = 0
            var peakRSS = 0
            let keys = RedisQueueKeys(queue: name)
            while true {
                polls += 1
                let done = try await admin.send("ZCARD", RedisArgument(keys.succeeded)).int ?? 0
                for worker in fleet { peakRSS = max(peakRSS, ProcessStats.peakResidentBytes(pid: worker.processIdentifier) ?? 0) }
                if done >= jobs { break }
                if fleet.allSatisfy({ !$0.isRunning }) {
                    throw CheckFailure("the workers exited with \(done) of \(jobs) jobs done")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let drainSeconds = (ContinuousClock.now - started).seconds
            let after = try await commandsProcessed(admin)
            let callsAfter = try await clientCalls(admin)
            for worker in fleet { worker.waitUntilExit() }
            let perJob = Double(after - before - polls - 1) / Double(jobs)
            print(String(format: "drain       %9.0f jobs/s   (%d worker process(es), start to last job succeeded)", Double(jobs) / drainSeconds, workers))
            print(String(format: "redis       %9.3f commands/job while draining (server side, Lua included); %.4f round trips/job (EVALSHA, BLPOP)",
                         perJob, Double(callsAfter - callsBefore) / Double(jobs)))
            print("worker RSS  \(formatBytes(Int64(peakRSS))) peak")

            // Pickup latency and idle cost with one idle worker.
            let latencyQueue = name + "-idle"
            let idleWorker = try spawnWorker(queue: latencyQueue, extra: ["--concurrency", "4", "--id", "bench-idle"])
            defer { idleWorker.terminate() }
            try await Task.sleep(for: .seconds(2))
            let idleBefore = try await commandsProcessed(admin)
            let idleCallsBefore = try await clientCalls(admin)
            try await Task.sleep(for: .seconds(idleSeconds))
            let idleAfter = try await commandsProcessed(admin)
            let idleCallsAfter = try await clientCalls(admin)
            let idleRate = Double(idleAfter - idleBefore - 2) / Double(idleSeconds)
            let idleCalls = Double(idleCallsAfter - idleCallsBefore) / Double(idleSeconds)
            var latencies: [Double] = []
            for _ in 0..<latencySamples {
                let id = try await driver.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: latencyQueue)).id
                var record: JobRecord?
                for _ in 0..<2000 {
                    record = try await driver.job(id, queue: latencyQueue)
                    if record?.startedAt != nil { break }
                    try await Task.sleep(for: .milliseconds(1))
                }
                if let s = record?.startedAt, let e = record?.enqueuedAt { latencies.append(s.timeIntervalSince(e) * 1000) }
                try await Task.sleep(for: .milliseconds(20))  // let the worker go idle again
            }
            latencies.sort()
            func percentile(_ p: Double) -> Double { latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            print(String(format: "pickup      p50 %.2f ms, p99 %.2f ms   (idle queue, %d jobs, enqueue to start by Redis' clock)",
                         percentile(0.5), percentile(0.99), latencies.count))
            print(String(format: "idle        %9.2f Redis commands/s per idle worker, server side (%.2f round trips/s), over %d s",
                         idleRate, idleCalls, idleSeconds))
            idleWorker.terminate()
            idleWorker.waitUntilExit()

            for queue in [name, latencyQueue] { try await removeBenchQueue(queue, driver: driver, admin: admin) }
        }
    }

    private func commandsProcessed(_ redis: RedisConnection) async throws -> Int {
        let info = try await redis.send("INFO", "stats").string ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("total_commands_processed:") {
            return Int(line.split(separator: ":")[1]) ?? 0
        }
        return 0
    }

    /// Calls clients made of EVALSHA and BLPOP (the worker's round trips), from commandstats.
    private func clientCalls(_ redis: RedisConnection) async throws -> Int {
        let info = try await redis.send("INFO", "commandstats").string ?? ""
        var total = 0
        for line in info.split(whereSeparator: \.isNewline)
        where line.hasPrefix("cmdstat_evalsha:") || line.hasPrefix("cmdstat_blpop:") {
            if let calls = line.split(separator: "=").dropFirst().first?.split(separator: ",").first, let n = Int(calls) { total += n }
        }
        return total
    }

    private func spawnWorker(queue: String, extra: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var arguments = ["worker", "--queues", queue]
        if let url = redis.url { arguments += ["--redis-url", url] }
        process.arguments = arguments + extra
        var environment = ProcessInfo.processInfo.environment
        environment["DBQ_LOG_LEVEL"] = "warning"
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }
}

/// Removes a bench's own queue (its succeeded jobs and bookkeeping keys) from Redis, so
/// that `dbq queues` does not list it afterwards.
func removeBenchQueue(_ queue: String, driver: RedisQueue, admin: RedisConnection) async throws {
    _ = try await driver.purge(queue: queue, state: .succeeded)
    let k = RedisQueueKeys(queue: queue)
    try await admin.send("DEL", RedisArgument(k.fence), RedisArgument(k.wake), RedisArgument(k.pending))
    try await admin.send("SREM", RedisArgument(RedisQueueKeys.queues), RedisArgument(queue))
}
