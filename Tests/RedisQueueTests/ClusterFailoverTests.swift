import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import Queue
@testable import RedisClient
@testable import RedisQueue
import Testing

/// The local Redis Cluster (`deploy/local/cluster.sh`) losing a master under load: its
/// replica is promoted and the fleet carries on, with nothing lost and nothing done twice.
@Suite("Redis Cluster failover: a master SIGKILLed under a draining fleet and a beat", .serialized)
struct ClusterFailoverTests {
    var dbq: String { TestServices.dbqBinary }
    var env: [String: String] { ["DBQ_REDIS_URL": TestServices.clusterURL, "DBQ_LOG_LEVEL": "info"] }

    /// A queue name whose slot `endpoint` serves.
    func queueName(on endpoint: String, _ label: String, _ q: RedisQueue) -> String {
        while true {
            let name = freshQueueName(label)
            if q.nodes.endpoint(for: RedisQueueKeys(queue: name).routing) == endpoint { return name }
        }
    }

    @Test("a client whose slot map has gone stale (the queue's slot served elsewhere than it thinks): its durable push, fetch and finish, each ending with WAIT, follow MOVED and correct the map")
    func durableCallsFollowRedirects() async throws {
        let q = RedisQueue(configuration: try RedisConfiguration(url: TestServices.clusterURL), logger: Logger(label: "t"))
        #expect(try await q.ping())
        let masters = try await q.nodes.masters()
        try #require(masters.count >= 2)
        let name = freshQueueName("moved")
        let routing = RedisQueueKeys(queue: name).routing
        let slot = HashSlot.of(routing)
        let home = q.nodes.endpoint(for: routing)
        let elsewhere = try #require(masters.first { $0 != home })
        q.nodes.pretendSlot(slot, isAt: elsewhere)
        let id = try await q.push(noop(name)).id
        #expect(q.nodes.endpoint(for: routing) == home, "the push followed MOVED and corrected the map")
        q.nodes.pretendSlot(slot, isAt: elsewhere)
        let leased = try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(60)).jobs
        #expect(leased.map(\.lease.id) == [id], "the fetch followed MOVED")
        q.nodes.pretendSlot(slot, isAt: elsewhere)
        #expect(try await q.finish(leased.map { ($0.lease, .succeeded(result: nil)) }) == [true], "and so did the finish")
        #expect(try await q.job(id, queue: name)?.state == "succeeded")
    }

    @Test("20,000 jobs by three workers and a beat every second while their master is SIGKILLed: all succeed once, no slot fires twice, recovery timed")
    func masterKilled() async throws {
        let q = RedisQueue(configuration: try RedisConfiguration(url: TestServices.clusterURL), logger: Logger(label: "t"))
        #expect(try await q.ping(), "the cluster answers (deploy/local/cluster.sh start)")
        let masters = try await q.nodes.masters()
        try #require(masters.count == 3, "a cluster of three masters: \(masters)")
        let victim = masters[Int.random(in: 0..<3)]
        let port = try #require(victim.split(separator: ":").last.map(String.init))
        let name = queueName(on: victim, "failover", q), beatQueue = queueName(on: victim, "failover-beat", q)
        var ids: [String] = []
        for _ in 0..<20 { ids += try await q.pushMany((0..<1000).map { _ in JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: name) }).map(\.id) }

        let schedule = TestServices.temporaryDirectory("dbq-failover") + "/schedule.yaml"
        try "entries:\n  - {name: tick, cron: \"* * * * * *\", kind: noop, queue: \(beatQueue), catch_up: all, overlap: allow}\n"
            .write(toFile: schedule, atomically: true, encoding: .utf8)
        let beat = try ChildProcess(dbq, ["beat", "--schedule", schedule], environment: env)
        defer { beat.signal(SIGTERM) }
        let workers = try (0..<3).map { i in
            try ChildProcess(dbq, ["worker", "--queues", "\(name),\(beatQueue)", "--concurrency", "64", "--lease", "5s", "--rescue-interval", "1s",
                                   "--id", "fo-\(i)"], environment: env)
        }
        // Kill the master once a quarter of the jobs are done: the rest run across the failover.
        #expect(try await eventually(.seconds(120)) { try await q.stats(queue: name, workers: []).succeeded >= 5000 })
        let pidText = try String(contentsOfFile: "\(TestServices.clusterDirectory)/\(port)/redis.pid", encoding: .utf8)
        let pid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let killedAt = ContinuousClock.now
        kill(pid, SIGKILL)
        // Recovery: the first push to the killed master's slots that succeeds (the client
        // waits out the failover; a replica is promoted after the node timeout, 2 s).
        let probe = queueName(on: victim, "failover-probe", q)
        _ = try await q.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: probe))
        let recovery = (ContinuousClock.now - killedAt).seconds
        print(String(format: "cluster failover: the killed master's slots took writes again after %.2f s", recovery))
        #expect(recovery < 30)

        #expect(try await eventually(.seconds(180)) { try await q.stats(queue: name, workers: []).succeeded == 20_000 })
        try await Task.sleep(for: .seconds(2))
        beat.signal(SIGTERM)
        _ = await beat.wait(timeout: .seconds(15))
        var accepted = 0, refused = 0
        for w in workers {
            w.signal(SIGTERM)
            #expect(await w.wait(timeout: .seconds(30)) == 0, "a worker did not stop: \(w.stderr.suffix(1500))")
            for line in w.stderr.split(separator: "\n") where line.contains("worker stopped") {
                func field(_ key: String) -> Int {
                    line.split(separator: " ").first { $0.hasPrefix(key + "=") }.flatMap { Int($0.dropFirst(key.count + 1)) } ?? 0
                }
                accepted += field("worker.finished") - field("worker.refused")
                refused += field("worker.refused")
            }
        }
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.succeeded == 20_000 && stats.dead == 0 && stats.pending + stats.running + stats.scheduled == 0, "\(stats)")
        // Each job's completion was accepted once (the fencing and the replicas' WAIT hold):
        // the workers' accepted completions are the jobs and the beat's ticks, no more.
        let beatStats = try await q.stats(queue: beatQueue, workers: [])
        #expect(accepted == 20_000 + beatStats.succeeded, "accepted \(accepted), refused \(refused), beat ticks \(beatStats.succeeded)")
        var leasedAgain = 0
        let keys = RedisQueueKeys(queue: name)
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let replies = try await q.nodes.pipeline(ids[start..<min(ids.count, start + 1000)].map { RedisCommand("HGET", RedisArgument(keys.job($0)), "attempt") }, key: keys.routing)
            leasedAgain += replies.filter { ($0.int ?? 1) > 1 }.count
        }
        print("cluster failover: \(leasedAgain) of 20,000 jobs were leased a second time (a lease lost with the master or lapsed during the failover); \(refused) stale completions refused")

        // The beat: every second fired once, none twice, none skipped (catch_up: all).
        let bk = RedisQueueKeys(queue: beatQueue)
        var slotIDs: [String] = []
        for state in ["pending", "running", "succeeded", "scheduled"] {
            slotIDs += (try await q.nodes.send(key: bk.routing, "ZRANGE", RedisArgument(bk.set(for: state)), 0, -1).array ?? []).compactMap(\.string)
        }
        let slots = try await q.nodes.pipeline(slotIDs.map { RedisCommand("HGET", RedisArgument(bk.job($0)), "beat_slot") }, key: bk.routing)
            .compactMap { $0.string.flatMap(Double.init).map { Int($0 / 1000) } }.sorted()
        #expect(Set(slots).count == slots.count, "a slot fired twice: \(slots)")
        if let first = slots.first, let last = slots.last {
            #expect(slots.count == last - first + 1, "slots skipped between \(first) and \(last): \(slots.count) fired")
        }
        #expect(slots.count >= 5, "the beat fired \(slots.count) slots")

        // The cluster whole again: the old master rejoins as a replica.
        // Through dbq's Subprocess (posix_spawn, descriptors closed): the daemon the script
        // starts must not inherit a descriptor the test waits on.
        let restart = try Subprocess("/bin/bash", arguments: [TestServices.projectRoot + "/deploy/local/cluster.sh", "restart-node", port],
                                     environment: ProcessInfo.processInfo.environment)
        let status = await restart.wait()
        #expect(status == 0, "\(restart.standardError)")
        #expect(try await eventually(.seconds(60)) {
            let info = try await RedisConnection.connect(q.configuration.node(victim), logger: Logger(label: "t")).send("INFO", "replication").string ?? ""
            return info.contains("role:slave") && info.contains("master_link_status:up")
        }, "the killed node rejoined as a replica")
        for queue in [name, beatQueue, probe] { _ = try? await q.purge(queue: queue, state: .succeeded) }
    }
}
