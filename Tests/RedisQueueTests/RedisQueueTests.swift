import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import Queue
import RedisClient
@testable import RedisQueue
import Testing

func freshQueueName(_ label: String = "t") -> String { "\(label)-\(UUID().uuidString.prefix(8).lowercased())" }

func makeDriver() throws -> RedisQueue {
    RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: Logger(label: "test.queue"))
}

func noop(_ queue: String, id: String = JobID.make(), priority: Int = 5, runAt: Date? = nil, unique: String? = nil, max: Int = 3) -> JobEnvelope {
    JobEnvelope(id: id, kind: "noop", version: 1, payload: .object([:]), queue: queue, priority: priority, maxAttempts: max, runAt: runAt, uniqueKey: unique)
}


@Suite("Redis queue scripts against a real server")
struct RedisQueueScriptTests {
    @Test("push, fetch under a token, stale tokens refused, finish")
    func leases() async throws {
        let q = try makeDriver(), name = freshQueueName()
        let id = try await q.push(noop(name)).id
        let first = try await q.fetch(queue: name, max: 10, worker: "w1", lease: .seconds(30))
        #expect(first.jobs.map(\.lease.id) == [id])
        #expect(first.jobs[0].attempt == 1)
        #expect(try await q.fetch(queue: name, max: 10, worker: "w2", lease: .seconds(30)).jobs.isEmpty)
        let lease = first.jobs[0].lease
        let stale = Lease(id: id, queue: name, token: lease.token - 1)
        #expect(try await q.heartbeat([stale, lease], lease: .seconds(30)) == [.lost, .held])
        #expect(try await q.finish([(stale, .succeeded(result: nil))]) == [false])
        #expect(try await q.finish([(lease, .succeeded(result: .string("done")))]) == [true])
        let record = try #require(try await q.job(id, queue: name))
        #expect(record.state == "succeeded")
        #expect(record.result == .string("done"))
        // The same completion sent again (its reply lost to a failover) is acknowledged and
        // changes nothing; a stale token is still refused.
        #expect(try await q.finish([(lease, .succeeded(result: nil))]) == [true])
        #expect(try await q.job(id, queue: name)?.result == .string("done"))
        #expect(try await q.finish([(stale, .succeeded(result: nil))]) == [false])
    }

    @Test("a lapsed lease is rescued; the old token is void; the next lease is attempt 2 with a larger token")
    func rescue() async throws {
        let q = try makeDriver(), name = freshQueueName()
        let id = try await q.push(noop(name)).id
        let old = try await q.fetch(queue: name, max: 1, worker: "w1", lease: .milliseconds(200)).jobs[0].lease
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await q.rescue(queue: name) == (1, 0))
        #expect(try await q.job(id, queue: name)?.error?.contains("lease lapsed on attempt 1 (worker w1") == true)
        #expect(try await q.finish([(old, .succeeded(result: nil))]) == [false])
        #expect(try await q.heartbeat([old], lease: .seconds(300)) == [.lost])
        let again = try await q.fetch(queue: name, max: 1, worker: "w2", lease: .seconds(300)).jobs[0]
        #expect(again.attempt == 2 && again.lease.token > old.token)
        #expect(try await q.finish([(again.lease, .succeeded(result: nil))]) == [true])
    }

    @Test("priorities, FIFO inside a priority, and batch fetches")
    func ordering() async throws {
        let q = try makeDriver(), name = freshQueueName()
        var expected: [String] = []
        var pushes: [JobEnvelope] = []
        for priority in [1, 9, 5] {
            for i in 0..<3 {
                let e = noop(name, id: "p\(priority)-\(i)-\(UUID().uuidString.prefix(4))", priority: priority)
                pushes.append(e)
            }
        }
        for e in pushes { _ = try await q.push(e); try await Task.sleep(for: .milliseconds(2)) }
        expected = pushes.filter { $0.priority == 9 }.map(\.id) + pushes.filter { $0.priority == 5 }.map(\.id) + pushes.filter { $0.priority == 1 }.map(\.id)
        let fetched = try await q.fetch(queue: name, max: 100, worker: "w", lease: .seconds(300)).jobs.map(\.lease.id)
        #expect(fetched == expected)
    }

    @Test("a delayed job is not fetched before its time; the fetch says how long until it is due")
    func delayed() async throws {
        let q = try makeDriver(), name = freshQueueName()
        let runAt = Date().addingTimeInterval(5)
        let id = try await q.push(noop(name, runAt: runAt)).id
        let early = try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(300))
        if Date() < runAt.addingTimeInterval(-0.05) {
            #expect(early.jobs.isEmpty)
            let wait = try #require(early.nextScheduledIn)
            #expect(wait > .zero && wait <= .seconds(5))
        }
        if early.jobs.isEmpty {
            #expect(try await eventually(.seconds(15)) { try await !q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(300)).jobs.isEmpty })
        }
        // Never early: the job started at or after its requested time (one clock: same host).
        let record = try #require(try await q.job(id, queue: name))
        let started = try #require(record.startedAt)
        #expect(started.timeIntervalSince(runAt) >= -0.002, "started \(started), run at \(runAt)")
        #expect(abs((record.runAt ?? .distantPast).timeIntervalSince(runAt)) < 0.002)
    }

    @Test("unique keys merge while queued or running, and free when the job ends")
    func unique() async throws {
        let q = try makeDriver(), name = freshQueueName()
        let first = try await q.push(noop(name, unique: "nightly"))
        guard case .queued(let id) = first else { Issue.record("not queued"); return }
        #expect(try await q.push(noop(name, unique: "nightly")) == .merged(existingID: id))
        let lease = try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(300)).jobs[0].lease
        #expect(try await q.push(noop(name, unique: "nightly")) == .merged(existingID: id))
        _ = try await q.finish([(lease, .succeeded(result: nil))])
        if case .merged = try await q.push(noop(name, unique: "nightly")) { Issue.record("unique key not freed") }
        #expect(try await q.push(noop(name, id: id)) == .merged(existingID: id))
    }

    @Test("a batch push says which jobs merged, and into which, at their own positions")
    func batchMerges() async throws {
        let q = try makeDriver(), name = freshQueueName()
        let held = try await q.push(noop(name, unique: "weekly")).id
        let existing = try await q.push(noop(name)).id
        // More than one script call's batch, merges scattered through it (the first and
        // the last of a call, one inside the second call, two with one unique key).
        var envelopes = (0..<1_200).map { _ in noop(name) }
        envelopes[0] = noop(name, unique: "weekly")
        envelopes[499] = noop(name, id: existing)
        envelopes[700] = noop(name, unique: "fresh")
        envelopes[701] = noop(name, unique: "fresh")
        let results = try await q.pushMany(envelopes)
        #expect(results.count == envelopes.count)
        #expect(results[0] == .merged(existingID: held))
        #expect(results[499] == .merged(existingID: existing))
        #expect(results[700] == .queued(id: envelopes[700].id))
        #expect(results[701] == .merged(existingID: envelopes[700].id))
        let merged: Set = [0, 499, 701]
        for (i, result) in results.enumerated() where !merged.contains(i) {
            #expect(result == .queued(id: envelopes[i].id))
        }
        // A queued job's defaults read back as before, without being stored.
        let record = try #require(try await q.job(envelopes[1].id, queue: name))
        #expect(record.attempt == 0 && record.uniqueKey == nil && record.state == "pending")
        #expect(try await q.job(envelopes[700].id, queue: name)?.uniqueKey == "fresh")
    }

    @Test("cancel, retry, purge and the listings")
    func inspection() async throws {
        let q = try makeDriver(), name = freshQueueName()
        let waiting = try await q.push(noop(name)).id
        let running = try await q.push(noop(name, priority: 9)).id
        let lease = try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(300)).jobs[0].lease
        #expect(lease.id == running)
        #expect(try await q.cancel(waiting) == "cancelled")
        #expect(try await q.cancel(running) == "running")
        #expect(try await q.heartbeat([lease], lease: .seconds(300)) == [.cancelRequested])
        _ = try await q.finish([(lease, .dead(error: "boom"))])
        #expect(try await q.list(queue: name, state: .dead).map(\.id) == [running])
        #expect(try await q.list(queue: name, state: .cancelled).map(\.id) == [waiting])
        #expect(try await q.retry(running) == "pending")
        #expect(try await q.job(running)?.attempt == 0)
        #expect(try await q.list(queue: name, state: .pending).map(\.id) == [running])
        #expect(try await q.purge(queue: name, state: .cancelled) == 1)
        #expect(try await q.job(waiting, queue: name) == nil)
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.pending == 1 && stats.cancelled == 0)
        #expect((stats.oldestPendingSeconds ?? -1) >= 0)
    }

    @Test("a worker refuses a Redis that may evict keys, and says why")
    func evictionPolicy() async throws {
        let redis = try ScratchRedis(["--maxmemory-policy", "allkeys-lru"])
        try await redis.start()
        let q = RedisQueue(configuration: try RedisConfiguration(url: redis.url), logger: Logger(label: "t"))
        do {
            try await q.checkServer()
            Issue.record("accepted allkeys-lru")
        } catch {
            #expect("\(error)".contains("maxmemory-policy is 'allkeys-lru'"))
            #expect("\(error)".contains("noeviction"))
        }
        let result = try await runCommand(TestServices.dbqBinary, ["worker", "--redis-url", redis.url])
        #expect(result.status == 1)
        #expect(result.stderr.contains("maxmemory-policy"))
    }

    @Test("Redis loses its last writes (SIGKILLed, restarted from an RDB saved before a fetch): the next lease's token is a new one, the first worker's heartbeat, completion and commit are refused, the job ends with the second's outcome")
    func tokensNeverRepeatAfterLoss() async throws {
        let redis = try ScratchRedis(["--maxmemory-policy", "noeviction"])
        try await redis.start()
        func queue() throws -> RedisQueue { RedisQueue(configuration: try RedisConfiguration(url: redis.url), logger: Logger(label: "t")) }
        let name = freshQueueName("loss")
        let q = try queue()
        let id = try await q.push(noop(name)).id
        // What Redis will come back from: the job pending, the fence counter before A's fetch.
        let save = try await runCommand("/usr/bin/redis-cli", ["-p", String(redis.port), "SAVE"])
        #expect(save.stdout.contains("OK"), "\(save.stdout) \(save.stderr)")
        let a = try #require(try await q.fetch(queue: name, max: 1, worker: "A", lease: .seconds(300)).jobs.first).lease
        await redis.crash()
        try await redis.start()
        let q2 = try queue()
        #expect(try await q2.job(id, queue: name)?.state == "pending", "the lease was lost with the writes")
        let b = try #require(try await q2.fetch(queue: name, max: 1, worker: "B", lease: .seconds(300)).jobs.first).lease
        #expect(b.token != a.token, "B's lease does not carry A's token again (\(a.token))")
        // A's lease is gone: its heartbeat (what confirms a lease before an artefact's
        // manifest is written) and its completion are refused.
        #expect(try await q2.heartbeat([a], lease: .seconds(300)) == [.lost])
        #expect(try await q2.finish([(a, .succeeded(result: .string("A")))]) == [false], "A's late completion is refused")
        #expect(try await q2.finish([(b, .succeeded(result: .string("B")))]) == [true])
        let record = try #require(try await q2.job(id, queue: name))
        #expect(record.state == "succeeded" && record.worker == "B" && record.result == .string("B"))
    }

    @Test("a Redis that refuses CONFIG (managed Redis, an ACL user without +config): the policy is read from INFO; where nothing can be read, a warning, and the worker starts")
    func evictionPolicyWithoutConfig() async throws {
        for (policy, refusesEviction) in [("noeviction", false), ("allkeys-lru", true)] {
            let redis = try ScratchRedis(["--maxmemory-policy", policy])
            try await redis.start()
            for user in ["ACL SETUSER noconfig on >pw ~* &* +@all -config", "ACL SETUSER blind on >pw ~* &* +@all -config -info"] {
                let r = try await runCommand("/usr/bin/redis-cli", ["-p", String(redis.port)] + user.split(separator: " ").map(String.init))
                #expect(r.stdout.contains("OK"), "\(r.stdout) \(r.stderr)")
            }
            func queue(_ user: String) throws -> RedisQueue {
                RedisQueue(configuration: try RedisConfiguration(url: "redis://\(user):pw@127.0.0.1:\(redis.port)/0"), logger: Logger(label: "t"))
            }
            // CONFIG refused: the policy comes from INFO memory.
            if refusesEviction {
                await #expect(throws: RedisError.self) { try await queue("noconfig").checkServer() }
            } else {
                #expect(try await queue("noconfig").checkServer().isEmpty)
            }
            // CONFIG and INFO refused: accepted, with a warning that names what could not be read.
            let warnings = try await queue("blind").checkServer()
            #expect(warnings.count == 1 && warnings[0].contains("could not be read") && warnings[0].contains("noeviction"), "\(warnings)")
            if !refusesEviction {
                let worker = try ChildProcess(TestServices.dbqBinary, ["worker", "--redis-url", "redis://blind:pw@127.0.0.1:\(redis.port)/0", "--queues", "q"])
                try await Task.sleep(for: .seconds(2))
                #expect(worker.isRunning, "the worker started: \(worker.stderr)")
                #expect(worker.stderr.contains("could not be read"), "\(worker.stderr)")
                worker.signal(SIGTERM)
                _ = await worker.wait(timeout: .seconds(20))
            }
        }
    }
}

@Suite("Redis queue: correctness at the edges")
struct RedisQueueEdgeTests {
    @Test("a batch larger than Lua's unpack limit is fetched and finished in full", arguments: [9_000])
    func largeBatch(jobs: Int) async throws {
        let q = try makeDriver(), name = freshQueueName("big")
        var ids: [String] = []
        for start in stride(from: 0, to: jobs, by: 1000) {
            ids += try await q.pushMany((start..<min(jobs, start + 1000)).map { _ in noop(name) }).map(\.id)
        }
        // One fetch of every job: one script call whose ZADD carries 2 × 9,000 values.
        let leased = try await q.fetch(queue: name, max: jobs, worker: "w", lease: .seconds(60)).jobs
        #expect(leased.count == jobs)
        #expect(try await q.heartbeat(leased.map(\.lease), lease: .seconds(60)).allSatisfy { $0 == .held })
        let accepted = try await q.finish(leased.map { ($0.lease, .succeeded(result: nil)) })
        #expect(accepted.count == jobs && accepted.allSatisfy { $0 })
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.succeeded == jobs && stats.running == 0 && stats.pending == 0)
    }

    @Test("a running job whose cancellation was asked for ends cancelled when its lease lapses, never pending")
    func cancelThenRescue() async throws {
        let q = try makeDriver(), name = freshQueueName("cancel")
        let id = try await q.push(noop(name, unique: "one")).id
        let lease = try await q.fetch(queue: name, max: 1, worker: "w", lease: .milliseconds(200)).jobs[0].lease
        #expect(try await q.cancel(id, queue: name) == "running")
        try await Task.sleep(for: .milliseconds(300))
        _ = try await q.rescue(queue: name)
        let record = try #require(try await q.job(id, queue: name))
        #expect(record.state == "cancelled")
        #expect(try await q.fetch(queue: name, max: 1, worker: "w2", lease: .seconds(300)).jobs.isEmpty)
        #expect(try await q.finish([(lease, .succeeded(result: nil))]) == [false])
        // Its unique key is free again.
        #expect(try await q.push(noop(name, unique: "one")).id != id)
    }

    @Test("a job whose cancellation was asked for ends cancelled when it fails retryably or is handed back, and never runs again")
    func cancelOnRetryAndRelease() async throws {
        let q = try makeDriver(), name = freshQueueName("cancel")
        let failing = try await q.push(noop(name, unique: "failing")).id
        let handedBack = try await q.push(noop(name)).id
        let leases = try await q.fetch(queue: name, max: 2, worker: "w", lease: .seconds(300)).jobs.map(\.lease)
        #expect(leases.count == 2)
        for id in [failing, handedBack] { #expect(try await q.cancel(id, queue: name) == "running") }
        let outcomes: [(Lease, Outcome)] = leases.map { ($0, $0.id == failing ? .retry(afterMilliseconds: 10, error: "boom") : .released) }
        #expect(try await q.finish(outcomes) == [true, true])
        for id in [failing, handedBack] { #expect(try await q.job(id, queue: name)?.state == "cancelled", "\(id)") }
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await q.fetch(queue: name, max: 2, worker: "w2", lease: .seconds(300)).jobs.isEmpty)
        // The unique key was released with the job's end.
        #expect(try await q.push(noop(name, unique: "failing")).id != failing)
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.cancelled == 2 && stats.scheduled == 0)
    }

    @Test("a unique key lives as long as its job (a job due in two days keeps it, with no expiry), is released once at its end, and a key whose job is gone is free")
    func uniqueKeyLivesWithItsJob() async throws {
        let q = try makeDriver(), name = freshQueueName("unique")
        let keys = RedisQueueKeys(queue: name)
        let later = Date().addingTimeInterval(2 * 86_400)
        let scheduled = try await q.push(noop(name, runAt: later, unique: "nightly")).id
        #expect(try await q.nodes.send(key: keys.routing, "PTTL", RedisArgument(keys.unique("nightly"))).int == -1, "no expiry while its job waits")
        #expect(try await q.push(noop(name, runAt: later, unique: "nightly")).id == scheduled, "merged, however long before it is due")
        #expect(try await q.cancel(scheduled, queue: name) == "cancelled")

        // Its end releases it, once: a completion sent again never releases a newer holder's key.
        let first = try await q.push(noop(name, unique: "daily")).id
        let lease = try #require(try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(300)).jobs.first).lease
        #expect(lease.id == first)
        #expect(try await q.finish([(lease, .succeeded(result: nil))]) == [true])
        let second = try await q.push(noop(name, unique: "daily")).id
        #expect(second != first)
        #expect(try await q.finish([(lease, .succeeded(result: nil))]) == [true], "the first completion, sent again, is acknowledged")
        #expect(try await q.push(noop(name, unique: "daily")).id == second, "and did not release the second job's key")
        // A holder whose hash was deleted by hand leaves a free key.
        try await q.nodes.send(key: keys.routing, "DEL", RedisArgument(keys.job(second)))
        #expect(try await q.push(noop(name, unique: "daily")).id != second)
    }

    @Test("a beat job's success is kept on its entry after the job's hash expires")
    func beatSuccessOutlivesJob() async throws {
        let q = try makeDriver(), name = freshQueueName("weekly")
        let slot = Date(timeIntervalSince1970: 1_700_000_000)
        let envelope = noop(name)
        #expect(try await q.beatFire(entry: "weekly-verify", slot: slot, skipIfRunning: true, envelope: envelope) == .fired(id: envelope.id))
        let lease = try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(300)).jobs[0].lease
        #expect(try await q.finish([(lease, .succeeded(result: nil))]) == [true])
        try await q.nodes.send(key: RedisQueueKeys(queue: name).routing, "DEL", RedisArgument(RedisQueueKeys(queue: name).job(envelope.id)))
        let state = try await q.beatState(entry: "weekly-verify", queue: name)
        let success = try #require(state.lastSuccess)
        #expect(abs(success.timeIntervalSinceNow) < 60)
        #expect(state.lastOutcome == "succeeded" && state.lastOutcomeJobID == envelope.id)
    }

    @Test("a resource lock held across a killed Redis connection (CLIENT KILL): the holder reconnects and keeps it")
    func lockSurvivesClientKill() async throws {
        let q = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: Logger(label: "t"), connections: 1)
        let name = "kill-\(UUID().uuidString.prefix(8))"
        // A hold of 120 s renewed every 300 ms: the kill costs one failed renewal, whatever the load.
        let result = try await q.withLock(name, mode: .shared, owner: "job", ttl: .seconds(120), renewEvery: .milliseconds(300)) {
            let lockKey = RedisQueueKeys.lock(name).shared
            let connection = q.nodes.connection(for: lockKey)
            // An admin connection to the node that holds the lock (the one node of a single Redis).
            let admin = try await RedisConnection.connect(q.configuration.node(q.nodes.endpoint(for: lockKey)), logger: Logger(label: "t"))
            let id = try #require(try await connection.send("CLIENT", "ID").int)
            try await admin.send("CLIENT", "KILL", "ID", RedisArgument(id))
            // Several renewals: the first meets the killed connection and fails; the next reconnects.
            while await connection.connections < 2 { try await Task.sleep(for: .milliseconds(50)) }
            try await Task.sleep(for: .seconds(1))
            return "done"
        }
        #expect(result == "done")
    }
}
