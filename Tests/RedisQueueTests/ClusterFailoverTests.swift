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
@Suite("Redis Cluster faults: a master SIGKILLed, a queue's slot migrated, under a draining fleet", .serialized)
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

    /// A fresh queue on the cluster: its keys and slot, the master that holds it, and
    /// another master to move it to.
    func reshardQueue(_ label: String) async throws -> (RedisQueue, String, RedisQueueKeys, Int, String, String) {
        let q = RedisQueue(configuration: try RedisConfiguration(url: TestServices.clusterURL), logger: Logger(label: "t"))
        let masters = try await q.nodes.masters()
        try #require(masters.count >= 2)
        let name = freshQueueName(label)
        let keys = RedisQueueKeys(queue: name)
        let home = q.nodes.endpoint(for: keys.routing)
        return (q, name, keys, HashSlot.of(keys.routing), home, try #require(masters.first { $0 != home }))
    }

    @Test("a queue's slot migrated key by key: a fetch sent while one job's key has moved (every fixed key of the queue present) leases nothing from the split slot, waits, and leases on the new owner; every job stays in the set its state names")
    func fetchWhileSlotSplit() async throws {
        let (q, name, keys, slot, home, elsewhere) = try await reshardQueue("reshard")

        // Every fixed key present: the case in which Redis lets a script that declares only
        // them run on the source while part of the slot has moved.
        var ids = try await q.pushMany((0..<20).map { _ in noop(name, max: 1) }).map(\.id)
        ids.append(try await q.push(noop(name, runAt: Date().addingTimeInterval(3600))).id)
        let three = try await q.fetch(queue: name, max: 3, worker: "w0", lease: .seconds(300)).jobs
        _ = try await q.finish([(three[0].lease, .succeeded(result: nil)), (three[1].lease, .dead(error: "x"))])
        _ = try await q.cancel(try #require(try await q.nodes.send(key: keys.routing, "ZRANGE", RedisArgument(keys.pending), 0, 0).array?.first?.string), queue: name)
        for key in keys.scriptKeys.filter({ $0 != keys.wake && $0 != keys.slotGuard }) {
            #expect(try await q.nodes.send(key: keys.routing, "EXISTS", RedisArgument(key)).int == 1, "\(key) exists")
        }
        _ = try await q.nodes.send(key: keys.routing, "RPUSH", RedisArgument(keys.wake), "1")

        let migration = try await SlotMigration(q, slot: slot, from: home, to: elsewhere)
        try await migration.begin()
        let first = try #require(try await q.nodes.send(key: keys.routing, "ZRANGE", RedisArgument(keys.pending), 0, 0).array?.first?.string)
        try await migration.move([keys.job(first)])
        let fetch = Task { try await q.fetch(queue: name, max: 10, worker: "w1", lease: .seconds(300)) }
        try await Task.sleep(for: .milliseconds(800))
        try await migration.moveAll()
        try await migration.finish()
        await migration.close()
        let leased = (try? await fetch.value)?.jobs ?? []
        #expect(leased.count == 10 && leased.contains { $0.lease.id == first }, "the fetch leased \(leased.count) jobs once the slot was whole")

        // Every job findable: in the set of the state its hash names.
        var lost: [String] = []
        for id in ids {
            guard let record = try await q.job(id, queue: name) else { lost.append(id + " (no hash)"); continue }
            let score = try await q.nodes.send(key: keys.routing, "ZSCORE", RedisArgument(keys.set(for: record.state)), RedisArgument(id))
            if score.string == nil { lost.append(id + " (\(record.state), in no set)") }
        }
        #expect(lost.isEmpty, "jobs in no set: \(lost)")
        #expect(q.nodes.endpoint(for: keys.routing) == elsewhere, "the client follows the slot to its new owner")
        try await SlotMigration(q, slot: slot, from: elsewhere, to: home).run()
        _ = try? await q.purge(queue: name, state: .succeeded)
    }

    @Test("20,000 jobs drained by two workers while their queue's slot migrates to another master and back: all succeed, each completion accepted once")
    func slotMigratedMidDrain() async throws {
        let (q, name, _, slot, home, elsewhere) = try await reshardQueue("reshard-busy")
        for _ in 0..<20 { _ = try await q.pushMany((0..<1000).map { _ in noop(name) }) }
        let workers = try (0..<2).map { i in
            try ChildProcess(dbq, ["worker", "--queues", name, "--concurrency", "16", "--lease", "10s", "--rescue-interval", "1s", "--id", "rs-\(i)"],
                             environment: env)
        }
        #expect(try await eventually(.seconds(60)) { try await q.stats(queue: name, workers: []).succeeded >= 2000 })
        let away = ContinuousClock.now
        try await SlotMigration(q, slot: slot, from: home, to: elsewhere).run()
        let movedAway = ContinuousClock.now - away
        let halfway = try await q.stats(queue: name, workers: []).succeeded
        #expect(try await eventually(.seconds(60)) { try await q.stats(queue: name, workers: []).succeeded >= halfway + 2000 })
        let back = ContinuousClock.now
        try await SlotMigration(q, slot: slot, from: elsewhere, to: home).run()
        let movedBack = ContinuousClock.now - back
        let afterBack = try await q.stats(queue: name, workers: []).succeeded
        print(String(format: "slot migration: away in %.2f s at %d succeeded, back in %.2f s at %d", movedAway.seconds, halfway, movedBack.seconds, afterBack))
        #expect(afterBack < 20_000, "the second migration happened mid-drain too")

        #expect(try await eventually(.seconds(120)) { try await q.stats(queue: name, workers: []).succeeded == 20_000 })
        var accepted = 0, refused = 0
        for w in workers {
            w.signal(SIGTERM)
            #expect(await w.wait(timeout: .seconds(30)) == 0, "a worker did not stop: \(w.stderr.suffix(1500))")
            let counted = completions(w.stderr)
            accepted += counted.accepted
            refused += counted.refused
        }
        let stats = try await q.stats(queue: name, workers: [])
        #expect(stats.succeeded == 20_000 && stats.dead == 0 && stats.pending + stats.running + stats.scheduled == 0, "\(stats)")
        #expect(accepted == 20_000, "accepted \(accepted), refused \(refused)")
        _ = try? await q.purge(queue: name, state: .succeeded)
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
            let counted = completions(w.stderr)
            accepted += counted.accepted
            refused += counted.refused
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

/// A hash slot moved from one master to another the way `redis-cli --cluster reshard`
/// moves it: the target marked importing, the source migrating, the keys sent over with
/// `MIGRATE` a batch at a time, then every master told the slot's new owner.
struct SlotMigration {
    let slot: Int
    let source: RedisConnection, target: RedisConnection
    let sourceID: String, targetID: String
    let targetEndpoint: String
    let password: String?
    let masters: [RedisConnection]

    init(_ q: RedisQueue, slot: Int, from source: String, to target: String) async throws {
        let logger = Logger(label: "t")
        self.slot = slot
        self.source = try await RedisConnection.connect(q.configuration.node(source), logger: logger)
        self.target = try await RedisConnection.connect(q.configuration.node(target), logger: logger)
        sourceID = try #require(try await self.source.send("CLUSTER", "MYID").string)
        targetID = try #require(try await self.target.send("CLUSTER", "MYID").string)
        targetEndpoint = target
        password = q.configuration.password
        var masters: [RedisConnection] = []
        for endpoint in try await q.nodes.masters() { masters.append(try await RedisConnection.connect(q.configuration.node(endpoint), logger: logger)) }
        self.masters = masters
    }

    func begin() async throws {
        #expect(try await target.send("CLUSTER", "SETSLOT", RedisArgument(slot), "IMPORTING", RedisArgument(sourceID)).string == "OK")
        #expect(try await source.send("CLUSTER", "SETSLOT", RedisArgument(slot), "MIGRATING", RedisArgument(targetID)).string == "OK")
    }

    /// Sends `keys` to the target. → how many moved.
    @discardableResult
    func move(_ keys: [String]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        let parts = targetEndpoint.split(separator: ":")
        var arguments: [RedisArgument] = [RedisArgument(String(parts[0])), RedisArgument(String(parts[1])), "", 0, 5000]
        if let password { arguments += ["AUTH", RedisArgument(password)] }
        arguments += ["KEYS"] + keys.map { RedisArgument($0) }
        let reply = try await source.send(RedisCommand(["MIGRATE"] + arguments))
        if case .error(let message) = reply { Issue.record("MIGRATE: \(message)") }
        return keys.count
    }

    /// Moves whatever the source still holds of the slot, `batch` keys at a time.
    func moveAll(batch: Int = 100) async throws {
        while true {
            let keys = (try await source.send("CLUSTER", "GETKEYSINSLOT", RedisArgument(slot), RedisArgument(batch)).array ?? []).compactMap(\.string)
            if keys.isEmpty { return }
            try await move(keys)
        }
    }

    /// The slot is the target's: the target first, then the source, then every master.
    func finish() async throws {
        for node in [target, source] + masters {
            _ = try await node.send("CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID))
        }
    }

    /// The whole migration, for a busy slot.
    func run() async throws {
        try await begin()
        try await moveAll()
        try await finish()
    }

    func close() async {
        for node in [source, target] + masters { await node.close() }
    }
}

/// The completions a worker's "worker stopped" line reports: accepted and refused.
func completions(_ stderr: String) -> (accepted: Int, refused: Int) {
    var accepted = 0, refused = 0
    for line in stderr.split(separator: "\n") where line.contains("worker stopped") {
        func field(_ key: String) -> Int {
            line.split(separator: " ").first { $0.hasPrefix(key + "=") }.flatMap { Int($0.dropFirst(key.count + 1)) } ?? 0
        }
        accepted += field("worker.finished") - field("worker.refused")
        refused += field("worker.refused")
    }
    return (accepted, refused)
}
