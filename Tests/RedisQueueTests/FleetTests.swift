import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import Queue
import RedisClient
@testable import RedisQueue
import Testing

/// Real `dbq worker` processes against real Redis: what no job lost and no job done
/// twice mean when processes die.
@Suite("Worker fleets: real processes, real Redis")
struct FleetTests {
    var dbq: String { TestServices.dbqBinary }
    var env: [String: String] { ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info"] }

    func worker(_ queue: String, _ extra: [String] = [], id: String? = nil) throws -> ChildProcess {
        var arguments = ["worker", "--queues", queue, "--idle-wait", "500ms"] + extra
        if let id { arguments += ["--id", id] }
        return try ChildProcess(dbq, arguments, environment: env)
    }

    func sleepJob(_ queue: String, seconds: Double, max: Int = 3, hold: Hold? = nil) throws -> JobEnvelope {
        JobEnvelope(kind: "sleep", version: 1, payload: try JSONValue(encoding: SleepJob.Payload(seconds: seconds, holdWhileExists: hold?.path)),
                    queue: queue, maxAttempts: max)
    }

    /// A file whose existence keeps `sleep` jobs running: a job held by it cannot end
    /// before the test lets it go, however slow or fast the machine is.
    final class Hold {
        let path = TestServices.temporaryDirectory("dbq-hold") + "/hold"
        init() { FileManager.default.createFile(atPath: path, contents: nil) }
        func release() { try? FileManager.default.removeItem(atPath: path) }
        deinit { release() }
    }

    @Test("10,000 jobs through 4 worker processes: every job completed, each on its first and only attempt")
    func exactlyOnce() async throws {
        let q = try makeDriver(), name = freshQueueName("fleet")
        var ids: [String] = []
        for batch in 0..<10 {
            let envelopes = (0..<1000).map { _ in noop(name) }
            ids += try await q.pushMany(envelopes).map(\.id)
            _ = batch
        }
        let workers = try (0..<4).map { try worker(name, ["--concurrency", "16", "--exit-when-idle"], id: "w\($0)") }
        for w in workers { #expect(await w.wait(timeout: .seconds(120)) == 0, "\(w.stderr.suffix(2000))") }
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.succeeded == 10_000)
        #expect(stats.pending + stats.running + stats.scheduled + stats.dead == 0)
        let keys = RedisQueueKeys(queue: name)
        let replies = try await q.nodes.pipeline(ids.map { RedisCommand("HMGET", RedisArgument(keys.job($0)), "attempt", "worker", "state") }, key: keys.routing)
        var perWorker: [String: Int] = [:]
        for reply in replies {
            let f = reply.array ?? []
            #expect(f.first?.int == 1)
            #expect(f.last?.string == "succeeded")
            perWorker[f[1].string ?? "?", default: 0] += 1
        }
        #expect(perWorker.values.reduce(0, +) == 10_000)
        #expect(perWorker.count >= 2, "work spread over the fleet: \(perWorker)")
    }

    @Test("a bulk push onto an idle queue wakes as many idle workers as it has jobs for, not one (each waits 30 s)")
    func bulkPushWakesEveryIdleWorker() async throws {
        let name = freshQueueName("wake")
        let workers = try (0..<4).map { i in
            try ChildProcess(dbq, ["worker", "--queues", name, "--concurrency", "1", "--idle-wait", "30s", "--id", "W\(i)"], environment: env)
        }
        defer { for w in workers { w.signal(SIGTERM) } }
        try await Task.sleep(for: .seconds(2))  // every worker in its 30 s wait
        let hold = Hold()
        let q = try makeDriver()
        let jobs = try (0..<4).map { _ in try sleepJob(name, seconds: 0, hold: hold) }
        _ = try await q.pushMany(jobs)
        // Each worker takes one (concurrency 1): all four run, long before any 30 s wait ends.
        let running = try await polled(.seconds(10), every: .milliseconds(100), {
            try await q.list(queue: name, state: .running).count
        }, until: { $0 == 4 })
        #expect(running == 4, "only \(running) of 4 idle workers woke for 4 jobs")
        hold.release()
        let done = try await polled(.seconds(20), { try await q.stats(queue: name, workers: []).succeeded }, until: { $0 == 4 })
        #expect(done == 4)
    }

    @Test("SIGKILL mid-job: the lease lapses, another worker runs the job again, it completes")
    func sigkill() async throws {
        let q = try makeDriver(), name = freshQueueName("kill")
        let hold = Hold()
        let id = try await q.push(try sleepJob(name, seconds: 0.2, hold: hold)).id
        // A lease a loaded machine cannot make lapse while A lives (a 1 s one could: A then
        // ran the job again itself, attempt 2, and B's run was attempt 3).
        let a = try worker(name, ["--lease", "10s", "--rescue-interval", "300ms"], id: "A")
        // Held: A's attempt cannot end before it is killed, however late this poll looks.
        #expect(try await eventually(.seconds(90)) { try await q.job(id, queue: name)?.state == "running" })
        a.signal(SIGKILL)
        _ = await a.wait(timeout: .seconds(5))
        hold.release()
        let b = try worker(name, ["--lease", "10s", "--rescue-interval", "300ms"], id: "B")
        #expect(try await eventually(.seconds(90)) { try await q.job(id, queue: name)?.state == "succeeded" })
        let record = try #require(try await q.job(id, queue: name))
        #expect(record.worker == "B")
        #expect(record.attempt == 2)
        b.signal(SIGTERM)
        #expect(await b.wait(timeout: .seconds(10)) == 0)
    }

    @Test("SIGTERM with jobs longer than the grace period: exit 0 at once, the jobs go back and run elsewhere")
    func sigtermHandsBack() async throws {
        let q = try makeDriver(), name = freshQueueName("term")
        var ids: [String] = []
        // Held jobs: only a hand-back can end them on A.
        let hold = Hold()
        for _ in 0..<3 { ids.append(try await q.push(try sleepJob(name, seconds: 0.1, hold: hold)).id) }
        let a = try worker(name, ["--concurrency", "3", "--shutdown-grace", "300ms"], id: "A")
        #expect(try await eventually(.seconds(90)) { try await q.list(queue: name, state: .running).count == 3 })
        a.signal(SIGTERM)
        #expect(await a.wait(timeout: .seconds(30)) == 0, "\(a.stderr.suffix(1000))")
        for id in ids {
            let r = try await q.job(id, queue: name)
            #expect(r?.state == "pending" && r?.attempt == 0, "\(String(describing: r))")
        }
        hold.release()
        let b = try worker(name, ["--concurrency", "3", "--exit-when-idle"], id: "B")
        #expect(await b.wait(timeout: .seconds(60)) == 0)
        for id in ids { #expect(try await q.job(id, queue: name)?.state == "succeeded") }
    }

    @Test("SIGTERM with jobs shorter than the grace period: they finish, then exit 0")
    func sigtermFinishes() async throws {
        let q = try makeDriver(), name = freshQueueName("term2")
        let hold = Hold()
        let id = try await q.push(try sleepJob(name, seconds: 0.1, hold: hold)).id
        let a = try worker(name, ["--shutdown-grace", "60s"], id: "A")
        #expect(try await eventually(.seconds(90)) { try await q.job(id, queue: name)?.state == "running" })
        a.signal(SIGTERM)
        // Still held after the signal: the job ends only now, inside the grace period.
        try await Task.sleep(for: .milliseconds(500))
        #expect(a.isRunning, "the worker left before its running job ended: \(a.stderr.suffix(1000))")
        hold.release()
        #expect(await a.wait(timeout: .seconds(60)) == 0)
        let record = try await q.job(id, queue: name)
        #expect(record?.state == "succeeded" && record?.worker == "A")
    }

    @Test("SIGTERM while idle in a ten-minute wait for work: exit 0 at once")
    func sigtermIdle() async throws {
        let q = try makeDriver(), name = freshQueueName("term-idle")
        let id = try await q.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: name)).id
        let a = try ChildProcess(dbq, ["worker", "--queues", name, "--idle-wait", "10m", "--id", "A"], environment: env)
        #expect(try await eventually(.seconds(90)) { try await q.job(id, queue: name)?.state == "succeeded" })
        // Idle now, blocked in its wait for work on Redis: the signal must not wait it out.
        try await Task.sleep(for: .milliseconds(300))
        a.signal(SIGTERM)
        #expect(await a.wait(timeout: .seconds(60)) == 0, "the worker did not stop within a minute of SIGTERM: \(a.stderr.suffix(1000))")
        #expect(a.stderr.contains("worker stopped"))
    }

    @Test("a worker paused past its lease (SIGSTOP) cannot complete the job another worker now holds")
    func sigstop() async throws {
        let q = try makeDriver(), name = freshQueueName("stop")
        let hold = Hold()
        let id = try await q.push(try sleepJob(name, seconds: 0.1, hold: hold)).id
        // A lease a loaded machine cannot make lapse while A lives (a 1 s one could: A then
        // ran the job again itself, attempt 2, and B's run was attempt 3).
        let a = try worker(name, ["--lease", "10s", "--rescue-interval", "300ms"], id: "A")
        #expect(try await eventually(.seconds(90)) { try await q.job(id, queue: name)?.state == "running" })
        a.signal(SIGSTOP)
        let b = try worker(name, ["--lease", "10s", "--rescue-interval", "300ms"], id: "B")
        #expect(try await eventually(.seconds(90)) { let r = try await q.job(id, queue: name); return r?.worker == "B" && r?.state == "running" })
        // A wakes while the job is still held on B: its next heartbeat finds the lease gone.
        a.signal(SIGCONT)
        #expect(try await eventually(.seconds(60)) { a.stderr.contains("lease lost") || a.stderr.contains("completion refused") },
                "\(a.stderr.suffix(2000))")
        hold.release()
        #expect(try await eventually(.seconds(60)) { try await q.job(id, queue: name)?.state == "succeeded" })
        let record = try #require(try await q.job(id, queue: name))
        #expect(record.worker == "B")
        #expect(record.attempt == 2)
        #expect(record.result?["attempt"] == .number(2))
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        #expect(await a.wait(timeout: .seconds(10)) == 0)
        #expect(await b.wait(timeout: .seconds(10)) == 0)
    }

    @Test("malformed envelope, unknown kind, newer payload version: dead with the reason; the worker goes on")
    func badJobs() async throws {
        let q = try makeDriver(), name = freshQueueName("bad")
        let unknown = try await q.push(JobEnvelope(kind: "nosuch", version: 1, payload: .object([:]), queue: name)).id
        let newer = try await q.push(JobEnvelope(kind: "sleep", version: 7, payload: .object(["seconds": .number(0)]), queue: name)).id
        let shape = try await q.push(JobEnvelope(kind: "sleep", version: 1, payload: .object(["seconds": .string("soon")]), queue: name)).id
        // An envelope that is not JSON at all, as a foreign producer might write.
        try await q.nodes.run(RedisScript(QueueScripts.push.source), keys: RedisQueueKeys(queue: name).scriptKeys.map { RedisArgument($0) }, arguments: [
            RedisArgument(RedisQueueKeys(queue: name).prefix), "garbage-1", "{not json", "5", "0", "", "60000", "3",
        ])
        let good = try await q.push(noop(name)).id
        let w = try worker(name, ["--exit-when-idle"])
        #expect(await w.wait(timeout: .seconds(30)) == 0)
        #expect(try await q.job(unknown, queue: name)?.error?.contains("unknown job kind 'nosuch'") == true)
        #expect(try await q.job(newer, queue: name)?.error?.contains("payload version 7 of kind 'sleep' is newer than this worker reads (1)") == true)
        #expect(try await q.job(shape, queue: name)?.error?.contains("'seconds' should be Double") == true)
        #expect(try await q.job("garbage-1", queue: name)?.error?.contains("envelope does not decode") == true)
        for id in [unknown, newer, shape, "garbage-1"] {
            let r = try await q.job(id, queue: name)
            #expect(r?.state == "dead" && r?.attempt == 1)
        }
        #expect(try await q.job(good, queue: name)?.state == "succeeded")
    }

    @Test("Redis crashes and restarts (AOF) while workers run: they reconnect and nothing is lost")
    func redisRestart() async throws {
        let redis = try ScratchRedis(["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"])
        try await redis.start()
        let q = RedisQueue(configuration: try RedisConfiguration(url: redis.url), logger: Logger(label: "t"))
        let name = freshQueueName("aof")
        let payload = try JSONValue(encoding: SleepJob.Payload(seconds: 0.01))
        var ids: [String] = []
        for _ in 0..<4 {
            ids += try await q.pushMany((0..<500).map { _ in JobEnvelope(kind: "sleep", version: 1, payload: payload, queue: name) }).map(\.id)
        }
        let environment = ["DBQ_REDIS_URL": redis.url, "DBQ_LOG_LEVEL": "warning"]
        let workers = try (0..<2).map { _ in
            try ChildProcess(dbq, ["worker", "--queues", name, "--concurrency", "8", "--lease", "10s", "--idle-wait", "500ms"], environment: environment)
        }
        #expect(try await eventually { try await q.stats(queue: name, workers: []).succeeded > 200 })
        await redis.crash()
        try await Task.sleep(for: .seconds(1))
        try await redis.start()
        #expect(try await eventually(.seconds(60)) { try await q.stats(queue: name, workers: []).succeeded == 2000 })
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.dead == 0 && stats.pending == 0 && stats.running == 0)
        for w in workers {
            #expect(w.isRunning, "a worker died with Redis: \(w.stderr.suffix(1000))")
            w.signal(SIGTERM)
            #expect(await w.wait(timeout: .seconds(15)) == 0)
        }
    }

    @Test("push --wait follows the job and exits with its outcome; --unique-key merges")
    func pushWait() async throws {
        let name = freshQueueName("wait")
        let w = try worker(name)
        let ok = try await runCommand(dbq, ["push", "sleep", "--queue", name, "--payload", #"{"seconds": 0.5}"#, "--wait"], environment: env)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stderr.contains("succeeded"))
        #expect(ok.stdout.contains(#""slept":0.5"#))
        let bad = try await runCommand(dbq, ["push", "sleep", "--queue", name, "--payload", #"{"seconds": 0, "fail": "nope", "permanent": true}"#, "--wait"], environment: env)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("dead"))
        #expect(bad.stderr.contains("not retryable: nope"))
        // Held, so the first job is still queued or running when the second push comes.
        let hold = Hold()
        let held = #"{"seconds": 0.1, "holdWhileExists": "\#(hold.path)"}"#
        let first = try await runCommand(dbq, ["push", "sleep", "--queue", name, "--payload", held, "--unique-key", "only-one"], environment: env)
        let second = try await runCommand(dbq, ["push", "sleep", "--queue", name, "--payload", held, "--unique-key", "only-one"], environment: env)
        #expect(first.stdout == second.stdout)
        #expect(second.stderr.contains("merged into job"))
        hold.release()
        w.signal(SIGTERM)
        #expect(await w.wait(timeout: .seconds(30)) == 0)
    }
}
