import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import Queue
import RedisClient
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

    /// Assigns `slot` to the master `target` on every master (the slot must hold no keys).
    func assign(_ slot: Int, to target: String, admin: RedisQueue) async throws {
        let ids = try await admin.nodes.eachMaster { c in (c.configuration.endpoint, try await c.send("CLUSTER", "MYID").string ?? "") }
        let targetID = try #require(ids.first { $0.0 == target }?.1)
        _ = try await admin.nodes.eachMaster { c in try await c.send("CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID)) }
    }

    @Test("a queue's slot moved to another master behind a client's back: its durable push, fetch and finish (each ending with WAIT) follow MOVED")
    func durableCallsFollowRedirects() async throws {
        let admin = RedisQueue(configuration: try RedisConfiguration(url: TestServices.clusterURL), logger: Logger(label: "t"))
        let masters = try await admin.nodes.masters()
        try #require(masters.count == 3)
        // A queue whose slot holds no keys at all (a slot with keys cannot be reassigned without MIGRATE).
        var name = "", slot = 0
        repeat {
            name = freshQueueName("moved")
            slot = HashSlot.of(RedisQueueKeys(queue: name).routing)
        } while try await admin.nodes.send(key: RedisQueueKeys(queue: name).routing, "CLUSTER", "COUNTKEYSINSLOT", RedisArgument(slot)).int != 0
        let home = admin.nodes.endpoint(for: RedisQueueKeys(queue: name).routing)
        let others = masters.filter { $0 != home }
        // The client under test learns the slot map now, then the slot moves without it.
        let q = RedisQueue(configuration: try RedisConfiguration(url: TestServices.clusterURL), logger: Logger(label: "t"))
        #expect(try await q.ping())
        #expect(q.nodes.endpoint(for: RedisQueueKeys(queue: name).routing) == home)
        try await assign(slot, to: others[0], admin: admin)
        let id = try await q.push(noop(name)).id
        #expect(try await admin.job(id, queue: name)?.state == "pending", "the push followed MOVED to the slot's new master")
        #expect(q.nodes.endpoint(for: RedisQueueKeys(queue: name).routing) == others[0], "and corrected its slot map")
        // Moved again, keys and all, as `redis-cli --cluster reshard` moves a slot:
        // IMPORTING on the target, MIGRATING on the source, MIGRATE, then the new owner.
        let routing = RedisQueueKeys(queue: name).routing
        let movingSlot = slot
        let ids = Dictionary(uniqueKeysWithValues: try await admin.nodes.eachMaster { c in (c.configuration.endpoint, try await c.send("CLUSTER", "MYID").string ?? "") })
        let (source, target) = (others[0], others[1])
        let keys = try await admin.nodes.send(key: routing, "CLUSTER", "GETKEYSINSLOT", RedisArgument(slot), "100").array?.compactMap(\.string) ?? []
        try #require(!keys.isEmpty)
        // redis+cluster://[user]:password@host:port,host:port,…
        let credentials = TestServices.clusterURL.components(separatedBy: "://").last?.components(separatedBy: "@").first ?? ""
        let password = try #require(credentials.components(separatedBy: ":").last)
        let targetParts = target.split(separator: ":").map(String.init)
        _ = try await admin.nodes.eachMaster { c -> Bool in
            if c.configuration.endpoint == target {
                _ = try await c.send("CLUSTER", "SETSLOT", RedisArgument(movingSlot), "IMPORTING", RedisArgument(ids[source] ?? ""))
            }
            return true
        }
        _ = try await admin.nodes.eachMaster { c -> Bool in
            if c.configuration.endpoint == source {
                _ = try await c.send("CLUSTER", "SETSLOT", RedisArgument(movingSlot), "MIGRATING", RedisArgument(ids[target] ?? ""))
                let reply = try await c.send(RedisCommand(["MIGRATE", RedisArgument(targetParts[0]), RedisArgument(targetParts[1]), "", "0", "5000",
                                                           "AUTH", RedisArgument(password), "KEYS"] + keys.map { RedisArgument($0) }))
                #expect(reply.string == "OK", "\(reply)")
            }
            return true
        }
        try await assign(slot, to: target, admin: admin)
        let leased = try await q.fetch(queue: name, max: 1, worker: "w", lease: .seconds(60)).jobs
        #expect(leased.map(\.lease.id) == [id], "the fetch followed MOVED")
        #expect(try await q.finish(leased.map { ($0.lease, .succeeded(result: nil)) }) == [true], "and so did the finish")
        #expect(try await admin.job(id, queue: name)?.state == "succeeded")
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
