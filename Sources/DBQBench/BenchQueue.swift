import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Logging
import Queue
import RedisClient
import RedisQueue

/// Queue throughput and costs, with real worker processes, on one Redis or a cluster.
struct BenchQueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Push N noop jobs, drain them with 1, 2, 4… worker processes, and print rates, latency, costs and the bound.",
        discussion: """
            Medians of --runs runs. Push: jobs/s, --push-streams batches of 1,000 in flight, \
            with the CPU per job of the pusher and of Redis and the bound. Drain: first job started to last job finished, by Redis' clock, for each worker \
            count of --scaling, with the CPU seconds per job of the workers and of Redis \
            (every master of a cluster, from INFO cpu), Redis commands per job, and the bound \
            named from those figures. Pickup latency p50/p99 on an idle queue (enqueue to \
            start by Redis' clock, each job read back once it has started, so no poller competes \
            with the pickup), and after a bulk push of four jobs to four idle workers (each \
            must wake, not only one); an idle worker's Redis commands per second; an idle \
            worker's RSS and PSS. On a Redis whose queue master has replicas: push, fetch and \
            finish times (each waits for one replica's acknowledgement) with every replica \
            current, then with one replica paused (CLIENT PAUSE) so it lags. With --celery PYTHON (a Python with celery[redis]; \
            deploy/local/bench-queue.sh makes one), Celery's solo worker drains --celery-jobs \
            no-op tasks on the same Redis in the same run, measured the same way, and the \
            ratio is printed. Uses fresh queues and deletes them afterwards, with their jobs. \
            Measure on a Redis without other data: millions of keys slow every figure.
            """)

    @OptionGroup var redis: RedisOptions
    @Option(help: "Jobs to push and drain per run.") var jobs = 100_000
    @Option(help: "Worker process counts to drain with, comma-separated.") var scaling = "1,2,4"
    @Option(help: "Jobs in flight per worker.") var concurrency = 1024
    @Option(help: "Runs per figure (medians).") var runs = 3
    @Option(help: "Push batches in flight at once.") var pushStreams = 4
    @Option(help: "Jobs for the pickup-latency figure.") var latencySamples = 1000
    @Option(help: "Seconds to count an idle worker's Redis commands.") var idleSeconds = 30
    @Option(help: "Bulk pushes of four 0.3 s jobs to four idle workers, for the pickup-after-bulk figure (0: none).") var bulkRounds = 20
    @Option(help: "Push-fetch-finish cycles for the lagging-replica figure (0: none; needs a master with a replica).") var replicaCycles = 20
    @Option(help: "A Python interpreter with celery[redis], to drain the same jobs with Celery beside dbq.") var celery: String?
    @Option(help: "Tasks for Celery's drain (it is ~30x slower).") var celeryJobs = 20_000

    func validate() throws {
        if jobs < 1000 || jobs > 10_000_000 { throw ValidationError("--jobs must be from 1000 to 10000000") }
        if runs < 1 || runs > 20 { throw ValidationError("--runs must be from 1 to 20") }
        if bulkRounds < 0 || bulkRounds > 1000 { throw ValidationError("--bulk-rounds must be from 0 to 1000") }
        if replicaCycles < 0 || replicaCycles > 1000 { throw ValidationError("--replica-cycles must be from 0 to 1000") }
        if counts.isEmpty || counts.contains(where: { $0 < 1 || $0 > 64 }) { throw ValidationError("--scaling must list worker counts from 1 to 64, e.g. 1,2,4") }
        if let celery, !FileManager.default.isExecutableFile(atPath: celery) {
            throw ValidationError("--celery \(celery) is not an executable Python; make one with deploy/local/bench-queue.sh")
        }
    }

    var counts: [Int] { scaling.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    struct Drain { var seconds: Double; var workerCPU: Double; var redisCPU: Double; var commands: Int; var peakRSS: Int }

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let configuration = try redis.configuration()
            let driver = RedisQueue(configuration: configuration, logger: logger, connections: max(4, pushStreams))
            try await driver.checkServer()
            let masters = try await driver.nodes.masters()
            print("dbq bench queue — \(jobs) noop jobs, \(runs) run(s), medians; \(concurrency) in flight per worker; "
                  + (configuration.isCluster ? "Redis Cluster of \(masters.count) masters" : "one Redis at \(configuration.endpoint)"))

            // Push.
            var pushRates: [Double] = [], pushClient: [Double] = [], pushRedis: [Double] = [], pushRedisBusy: [Double] = [], pushClientBusy: [Double] = []
            for _ in 0..<runs {
                let name = freshName("push")
                let (redisBefore, _) = try await redisCounters(driver)
                let (seconds, client) = try await timedPush(jobs, to: name, driver: driver)
                let (redisAfter, _) = try await redisCounters(driver)
                pushRates.append(Double(jobs) / seconds)
                pushClient.append(client / Double(jobs) * 1e6)
                pushRedis.append((redisAfter - redisBefore) / Double(jobs) * 1e6)
                pushRedisBusy.append((redisAfter - redisBefore) / seconds)
                pushClientBusy.append(client / seconds)
                try await removeBenchQueue(name, driver: driver)
            }
            // The pusher's CPU: encoding and sending the envelopes and reading the replies
            // (the envelopes are made before the clock starts).
            let pushBound = median(pushRedisBusy) >= 0.85 * Double(masters.count) ? "Redis CPU (\(Int(median(pushRedisBusy) * 100)) % of \(masters.count) core(s))"
                : median(pushRedisBusy) + median(pushClientBusy) >= 0.85 * Double(ProcessInfo.processInfo.activeProcessorCount)
                    ? "this machine's cores (pusher \(Int(median(pushClientBusy) * 100)) %, Redis \(Int(median(pushRedisBusy) * 100)) %)"
                : "round trips (pusher \(Int(median(pushClientBusy) * 100)) %, Redis \(Int(median(pushRedisBusy) * 100)) % busy)"
            print(String(format: "push        %9.0f jobs/s   (%d batches of 1,000 in flight; runs %@); CPU per job: pusher %.1f µs, Redis %.1f µs; bound: %@",
                         median(pushRates), pushStreams, range(pushRates), median(pushClient), median(pushRedis), pushBound))

            // Drain, for each worker count.
            var singleRate = 0.0
            for count in counts {
                var drains: [Drain] = []
                for _ in 0..<runs { drains.append(try await drain(workers: count, driver: driver)) }
                let rates = drains.map { Double(jobs) / $0.seconds }
                let rate = median(rates)
                if count == counts.first { singleRate = rate }
                let perJobWorker = median(drains.map { $0.workerCPU / Double(jobs) * 1e6 })
                let perJobRedis = median(drains.map { $0.redisCPU / Double(jobs) * 1e6 })
                let wall = median(drains.map(\.seconds))
                let redisBusy = median(drains.map { $0.redisCPU / $0.seconds })
                let workersBusy = median(drains.map { $0.workerCPU / $0.seconds })
                let cores = ProcessInfo.processInfo.activeProcessorCount
                let bound = redisBusy >= 0.85 * Double(masters.count) ? "Redis CPU (\(Int(redisBusy * 100)) % of \(masters.count) core(s))"
                    : redisBusy + workersBusy >= 0.85 * Double(cores) ? "this machine's \(cores) cores (workers \(Int(workersBusy * 100)) %, Redis \(Int(redisBusy * 100)) %)"
                    : workersBusy >= 0.85 * Double(count) ? "worker CPU (\(Int(workersBusy * 100)) % of \(count) process(es))"
                    : "round trips (workers \(Int(workersBusy * 100)) %, Redis \(Int(redisBusy * 100)) % busy)"
                print(String(format: "drain  %2dw  %9.0f jobs/s   (first job started to last finished, %.2f s; runs %@); CPU per job: workers %.1f µs, Redis %.1f µs; %.2f Redis commands/job; bound: %@",
                             count, rate, wall, range(rates), perJobWorker, perJobRedis,
                             median(drains.map { Double($0.commands) / Double(jobs) }), bound))
                print("            worker peak RSS \(formatBytes(Int64(drains.map(\.peakRSS).max() ?? 0)))")
            }

            if let celery {
                var rates: [Double] = []
                for _ in 0..<runs { rates.append(try await celeryDrain(python: celery)) }
                let rate = median(rates)
                print(String(format: "celery      %9.0f jobs/s   (solo worker, %d tasks, first started to last finished; runs %@) → dbq 1 worker is %.1f× Celery",
                             rate, celeryJobs, range(rates), singleRate / rate))
            }

            try await idleFigures(driver: driver)
            if bulkRounds > 0 { try await bulkPickup(driver: driver) }
            if replicaCycles > 0 { try await laggingReplica(driver: driver) }
        }
    }

    // MARK: - Steps

    func freshName(_ what: String) -> String { "bench-\(what)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// Pushes `count` noop jobs in batches of 1,000, `pushStreams` batches in flight.
    func push(_ count: Int, to queue: String, driver: RedisQueue) async throws -> Double {
        try await timedPush(count, to: queue, driver: driver).seconds
    }

    /// `push`, with this process's CPU seconds over the same time.
    func timedPush(_ count: Int, to queue: String, driver: RedisQueue) async throws -> (seconds: Double, cpu: Double) {
        let envelopes = (0..<count).map { _ in JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: queue) }
        let batches = stride(from: 0, to: count, by: 1000).map { Array(envelopes[$0..<min(count, $0 + 1000)]) }
        let cpuBefore = ProcessStats.cpuSeconds(pid: getpid()) ?? 0
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<min(pushStreams, batches.count) {
                let batch = batches[next]; next += 1
                group.addTask { _ = try await driver.pushMany(batch) }
            }
            while try await group.next() != nil, next < batches.count {
                let batch = batches[next]; next += 1
                group.addTask { _ = try await driver.pushMany(batch) }
            }
        }
        let seconds = (ContinuousClock.now - started).seconds
        return (seconds, (ProcessStats.cpuSeconds(pid: getpid()) ?? 0) - cpuBefore)
    }

    func drain(workers count: Int, driver: RedisQueue) async throws -> Drain {
        let name = freshName("drain")
        let first = JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: name)
        _ = try await driver.push(first)
        _ = try await push(jobs - 1, to: name, driver: driver)
        let keys = RedisQueueKeys(queue: name)
        let (cpuBefore, commandsBefore) = try await redisCounters(driver)
        let fleet = try (0..<count).map { i in try spawnWorker(queue: name, extra: ["--concurrency", String(concurrency), "--id", "bench-\(i)"]) }
        defer { for w in fleet where w.isRunning { w.terminate() } }
        var peakRSS = 0
        var workerCPU: [Int32: Double] = [:]
        while true {
            let done = try await driver.nodes.send(key: keys.routing, "ZCARD", RedisArgument(keys.succeeded)).int ?? 0
            for w in fleet {
                peakRSS = max(peakRSS, ProcessStats.peakResidentBytes(pid: w.processIdentifier) ?? 0)
                if let cpu = ProcessStats.cpuSeconds(pid: w.processIdentifier) { workerCPU[w.processIdentifier] = cpu }
            }
            if done >= jobs { break }
            if fleet.allSatisfy({ !$0.isRunning }) { throw CheckFailure("the workers exited with \(done) of \(jobs) jobs done") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let (cpuAfter, commandsAfter) = try await redisCounters(driver)
        for w in fleet { if let cpu = ProcessStats.cpuSeconds(pid: w.processIdentifier) { workerCPU[w.processIdentifier] = cpu } }
        // Startup CPU is the worker's too, but small beside 100,000 jobs.
        let started = try await driver.job(first.id, queue: name)?.startedAt
        let last = try await driver.nodes.send(key: keys.routing, "ZRANGE", RedisArgument(keys.succeeded), -1, -1, "WITHSCORES").array?.last?.string.flatMap(Double.init)
        guard let started, let last else { throw CheckFailure("cannot read the drain's first start and last finish from Redis") }
        for w in fleet { w.terminate() }
        for w in fleet { w.waitUntilExit() }
        try await removeBenchQueue(name, driver: driver)
        return Drain(seconds: max(0.001, last / 1000 - started.timeIntervalSince1970), workerCPU: workerCPU.values.reduce(0, +),
                     redisCPU: cpuAfter - cpuBefore, commands: commandsAfter - commandsBefore, peakRSS: peakRSS)
    }

    /// Celery's solo worker draining `celeryJobs` no-op tasks on the same Redis.
    func celeryDrain(python: String) async throws -> Double {
        let script = (try? TestLocation.projectRoot()) ?? "."
        let path = script + "/deploy/local/celery-drain.py"
        guard FileManager.default.fileExists(atPath: path) else { throw CheckFailure("\(path) is missing (run from the repository)") }
        let queue = freshName("celery")
        let url = try redis.configuration().url
        let out = NSTemporaryDirectory() + "\(queue).json"
        for (mode, extra) in [("push", [String]()), ("work", [out])] {
            let process = try Subprocess(python, arguments: [path, mode, url, queue, String(celeryJobs)] + extra, environment: ProcessInfo.processInfo.environment)
            let status = await process.wait()
            guard status == 0 else { throw CheckFailure("celery \(mode) failed (\(status)): \(process.standardError.suffix(800))") }
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        try? FileManager.default.removeItem(atPath: out)
        guard let times = try JSONSerialization.jsonObject(with: data) as? [String: Double], let a = times["first_start"], let b = times["last_finish"] else {
            throw CheckFailure("celery wrote no times")
        }
        return Double(celeryJobs) / max(0.001, b - a)
    }

    func idleFigures(driver: RedisQueue) async throws {
        let latencyQueue = freshName("idle")
        let idleWorker = try spawnWorker(queue: latencyQueue, extra: ["--concurrency", "4", "--id", "bench-idle"])
        defer { idleWorker.terminate() }
        try await Task.sleep(for: .seconds(3))
        let (_, before) = try await redisCounters(driver)
        try await Task.sleep(for: .seconds(idleSeconds))
        let (_, after) = try await redisCounters(driver)
        // Minus the first counters call's INFO (one per master; an INFO counts once done).
        let masters = try await driver.nodes.masters().count
        let idleRate = Double(after - before - masters) / Double(idleSeconds)
        let memory = ProcessStats.residentAndProportional(pid: idleWorker.processIdentifier)
        var latencies: [Double] = []
        for _ in 0..<latencySamples {
            let id = try await driver.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: latencyQueue)).id
            // Read back after the pickup, not while it happens: a poller asking Redis every
            // millisecond would take the very cores and Redis the pickup needs (the times
            // are Redis' own, so when they are read does not change them).
            var record: JobRecord?
            for _ in 0..<1000 {
                try await Task.sleep(for: .milliseconds(5))
                record = try await driver.job(id, queue: latencyQueue)
                if record?.startedAt != nil { break }
            }
            if let s = record?.startedAt, let e = record?.enqueuedAt { latencies.append(s.timeIntervalSince(e) * 1000) }
            try await Task.sleep(for: .milliseconds(20))  // let the worker go idle again
        }
        print(String(format: "pickup      p50 %.2f ms, p99 %.2f ms   (idle queue, %d jobs, enqueue to start by Redis' clock)",
                     percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.count))
        print(String(format: "idle        %9.2f Redis commands/s per idle worker, server side (Lua's commands included), over %d s", idleRate, idleSeconds))
        if let memory { print("idle worker RSS \(formatBytes(Int64(memory.rss))), PSS \(formatBytes(Int64(memory.pss)))") }
        idleWorker.terminate()
        idleWorker.waitUntilExit()
        try await removeBenchQueue(latencyQueue, driver: driver)
    }

    /// Four idle workers (one job at a time, the default idle wait) and bulk pushes of four
    /// 0.3 s jobs: each job's enqueue-to-start time. A bulk push that woke one worker
    /// leaves the other jobs waiting for a running one to finish, or for an idle wait to end.
    func bulkPickup(driver: RedisQueue) async throws {
        let queue = freshName("bulk")
        let fleet = try (0..<4).map { i in try spawnWorker(queue: queue, extra: ["--concurrency", "1", "--id", "bench-bulk-\(i)"]) }
        defer { for w in fleet where w.isRunning { w.terminate() } }
        try await Task.sleep(for: .seconds(3))
        var latencies: [Double] = []
        for _ in 0..<bulkRounds {
            let envelopes = (0..<4).map { _ in JobEnvelope(kind: "sleep", version: 1, payload: .object(["seconds": .number(0.3)]), queue: queue) }
            _ = try await driver.pushMany(envelopes)
            var records: [JobRecord] = []
            for _ in 0..<600 {
                try await Task.sleep(for: .milliseconds(50))
                records = []
                for envelope in envelopes { if let record = try await driver.job(envelope.id, queue: queue) { records.append(record) } }
                if records.count == 4 && records.allSatisfy({ $0.state == "succeeded" }) { break }
            }
            for record in records { if let s = record.startedAt, let e = record.enqueuedAt { latencies.append(s.timeIntervalSince(e) * 1000) } }
            try await Task.sleep(for: .milliseconds(500))  // every worker idle again
        }
        for w in fleet { w.terminate() }
        for w in fleet { w.waitUntilExit() }
        try await removeBenchQueue(queue, driver: driver)
        print(String(format: "bulk pickup p50 %.2f ms, p99 %.2f ms   (4 idle workers, 1 job each at a time; %d bulk pushes of 4 jobs of 0.3 s)",
                     percentile(latencies, 0.5), percentile(latencies, 0.99), bulkRounds))
    }

    /// Push, fetch and finish, one job at a time, on a queue whose master has replicas:
    /// with every replica current, then with one paused (`CLIENT PAUSE … ALL` stops it
    /// applying the master's stream, so it stops acknowledging). Each call waits for one
    /// acknowledgement at most `durableWait`: one lagging replica beside a current one
    /// costs nothing; a master's only replica lagging costs up to that wait per call.
    func laggingReplica(driver: RedisQueue) async throws {
        let queue = freshName("replica")
        let keys = RedisQueueKeys(queue: queue)
        let master = driver.nodes.endpoint(for: keys.routing)
        let info = try await driver.nodes.send(key: keys.routing, "INFO", "replication").string ?? ""
        let replicas = info.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("slave") && $0.contains("ip=") }.compactMap { line -> String? in
            let fields = Dictionary(line.split(separator: ":", maxSplits: 1).last.map { $0.split(separator: ",").compactMap { pair -> (String, String)? in
                let kv = pair.split(separator: "=", maxSplits: 1)
                return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
            } } ?? [], uniquingKeysWith: { a, _ in a })
            guard let ip = fields["ip"], let port = fields["port"] else { return nil }
            return RedisConfiguration.endpoint(host: ip, port: Int(port) ?? 0)
        }
        guard let lagging = replicas.first else {
            print("replica     (\(master) has no replica: no lagging-replica figure)")
            return
        }
        typealias Times = (push: [Double], fetch: [Double], finish: [Double])
        /// One push, fetch and finish, each timed (ms).
        func cycle(_ times: inout Times) async throws {
            var t = ContinuousClock.now
            _ = try await driver.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: queue))
            times.push.append((ContinuousClock.now - t).seconds * 1000)
            t = ContinuousClock.now
            let leased = try await driver.fetch(queue: queue, max: 1, worker: "bench-replica", lease: .seconds(60)).jobs
            times.fetch.append((ContinuousClock.now - t).seconds * 1000)
            t = ContinuousClock.now
            _ = try await driver.finish(leased.map { ($0.lease, .succeeded(result: nil)) })
            times.finish.append((ContinuousClock.now - t).seconds * 1000)
        }
        var current: Times = ([], [], []), paused: Times = ([], [], [])
        for _ in 0..<replicaCycles { try await cycle(&current) }
        // A paused Redis holds every command, `CLIENT UNPAUSE` included: the replica is
        // paused for windows of 5 s, cycles run while one still fits (one takes at most
        // three waits, 1.5 s), and each window is let run out.
        let replica = try await RedisConnection.connect(driver.configuration.node(lagging), logger: Logger(label: "dbq.bench"))
        let window = Duration.seconds(5), longest = RedisNodes.durableWait * 3 + .milliseconds(100)
        while paused.push.count < replicaCycles {
            _ = try await replica.send("CLIENT", "PAUSE", RedisArgument(Int(window.milliseconds)), "ALL")
            let end = ContinuousClock.now + window
            while paused.push.count < replicaCycles, ContinuousClock.now + longest < end { try await cycle(&paused) }
            try await Task.sleep(until: end + .milliseconds(50))
        }
        await replica.close()
        try await removeBenchQueue(queue, driver: driver)
        print(String(format: "replica     push %.2f / fetch %.2f / finish %.2f ms p50 with %d replica(s) of %@ current; %.2f / %.2f / %.2f ms with %@ paused (each call waits for one acknowledgement, at most %d ms)",
                     percentile(current.push, 0.5), percentile(current.fetch, 0.5), percentile(current.finish, 0.5), replicas.count, master,
                     percentile(paused.push, 0.5), percentile(paused.fetch, 0.5), percentile(paused.finish, 0.5), lagging,
                     Int(RedisNodes.durableWait.milliseconds)))
    }

    /// Redis' CPU seconds and commands processed, summed over every master.
    func redisCounters(_ driver: RedisQueue) async throws -> (cpu: Double, commands: Int) {
        let infos = try await driver.nodes.eachMaster { try await $0.send("INFO", "all").string ?? "" }
        var cpu = 0.0, commands = 0
        for info in infos {
            for line in info.split(whereSeparator: \.isNewline) {
                // A replica acknowledges its offset every second: replication, not the fleet.
                if line.hasPrefix("cmdstat_replconf:calls="), let calls = Int(line.dropFirst(23).prefix { $0.isNumber }) {
                    commands -= calls
                    continue
                }
                let parts = line.split(separator: ":")
                guard parts.count == 2 else { continue }
                switch parts[0] {
                case "used_cpu_user", "used_cpu_sys": cpu += Double(parts[1]) ?? 0
                case "total_commands_processed": commands += Int(parts[1]) ?? 0
                default: break
                }
            }
        }
        return (cpu, commands)
    }

    func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    func range(_ values: [Double]) -> String {
        guard let low = values.min(), let high = values.max() else { return "-" }
        return String(format: "%.0f–%.0f", low, high)
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

/// Where the repository is, for scripts a bench runs: the current directory when it has
/// deploy/local, else the directory above the binary's .build.
enum TestLocation {
    static func projectRoot() throws -> String {
        let cwd = FileManager.default.currentDirectoryPath
        if FileManager.default.fileExists(atPath: cwd + "/deploy/local") { return cwd }
        var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.path + "/deploy/local") { return url.path }
        }
        throw CheckFailure("cannot find the repository (deploy/local): run from its directory")
    }
}

/// Removes a bench's own queue (its finished jobs and bookkeeping keys) from Redis, so
/// that `dbq queues` does not list it afterwards.
func removeBenchQueue(_ queue: String, driver: RedisQueue) async throws {
    for state in [JobState.succeeded, .dead, .cancelled] { _ = try await driver.purge(queue: queue, state: state) }
    let k = RedisQueueKeys(queue: queue)
    // Jobs still pending (the push figure never drains its queue): their hashes too, or
    // every run would leave 100,000 behind in the Redis it measured.
    while true {
        let popped = try await driver.nodes.send(RedisCommand("ZPOPMIN", RedisArgument(k.pending), RedisArgument(10_000)), key: k.routing)
        guard let items = popped.array, !items.isEmpty else { break }
        let ids = stride(from: 0, to: items.count, by: 2).compactMap { items[$0].string }
        try await driver.nodes.send(RedisCommand(["DEL"] + ids.map { RedisArgument(k.job($0)) }), key: k.routing)
    }
    try await driver.nodes.send(RedisCommand("DEL", RedisArgument(k.fence), RedisArgument(k.wake), RedisArgument(k.pending), RedisArgument(k.prefix + "rescuer")), key: k.routing)
    try await driver.nodes.send(key: RedisQueueKeys.queues, "SREM", RedisArgument(RedisQueueKeys.queues), RedisArgument(queue))
}
