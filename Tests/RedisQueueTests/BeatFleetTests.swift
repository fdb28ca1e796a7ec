import Beat
import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import Queue
import RedisClient
@testable import RedisQueue
import Testing

/// Real `dbq beat` processes against real Redis.
@Suite("Beat fleets: real processes, real Redis")
struct BeatFleetTests {
    var dbq: String { TestServices.dbqBinary }
    var env: [String: String] { ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_LOG_LEVEL": "info"] }

    func scheduleFile(_ yaml: String) throws -> String {
        let path = TestServices.temporaryDirectory("dbq-beat") + "/schedule.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The schedule's identity, as the beat computes it for its leader lock.
    func scheduleIdentity(_ path: String) async throws -> String {
        try Schedule.load(path: path).identity
    }

    /// The slots (Unix seconds) of every job the beat queued on `queue`.
    func firedSlots(_ queue: String) async throws -> [Int] {
        let redis = try makeDriver().nodes
        let keys = RedisQueueKeys(queue: queue)
        var ids: [String] = []
        for state in ["pending", "running", "succeeded", "scheduled"] {
            ids += (try await redis.send(key: keys.routing, "ZRANGE", RedisArgument(keys.set(for: state)), 0, -1).array ?? []).compactMap(\.string)
        }
        let replies = try await redis.pipeline(ids.map { RedisCommand("HGET", RedisArgument(keys.job($0)), "beat_slot") }, key: keys.routing)
        return replies.compactMap { $0.string.flatMap(Double.init).map { Int($0 / 1000) } }.sorted()
    }

    @Test("three beats, every second, leader killed twice: every second of the window fires exactly once")
    func exactlyOnceAcrossFailover() async throws {
        let queue = freshQueueName("beat")
        let path = try scheduleFile("""
            entries:
              - {name: tick, cron: "* * * * * *", kind: noop, queue: \(queue), catch_up: all, overlap: allow}
            """)
        let q = try makeDriver()
        let scheduleID = try await scheduleIdentity(path)
        var beats = try (0..<3).map { _ in try ChildProcess(dbq, ["beat", "--schedule", path], environment: env) }
        // Timed from the first fire, not from the spawn: a loaded machine may take a while to start three processes.
        #expect(try await eventually(.seconds(90)) { try await !firedSlots(queue).isEmpty })
        var killed: [Int32] = []
        for round in 1...2 {
            try await Task.sleep(for: .seconds(20))
            let token = try #require(try await q.beatLeader(schedule: scheduleID), "no leader after \(round * 20) s")
            let pid = try #require(Int32(token.split(separator: ":")[1]))
            let leader = try #require(beats.first { $0.pid == pid }, "leader \(token) is not one of ours")
            leader.signal(SIGKILL)
            _ = await leader.wait(timeout: .seconds(5))
            killed.append(pid)
            beats.removeAll { $0.pid == pid }
        }
        try await Task.sleep(for: .seconds(22))
        // The survivors catch up to now (catch_up: all) before they are stopped.
        let stopped = Int(Date().timeIntervalSince1970)
        #expect(try await eventually(.seconds(60)) { try await (firedSlots(queue).last ?? 0) >= stopped })
        for beat in beats {
            beat.signal(SIGTERM)
            #expect(await beat.wait(timeout: .seconds(10)) == 0)
        }
        #expect(killed.count == 2)
        let slots = try await firedSlots(queue)
        #expect(Set(slots).count == slots.count, "a slot fired twice")
        let first = try #require(slots.first), last = try #require(slots.last)
        #expect(slots == Array(first...last), "missing seconds: \(Set(first...last).subtracting(slots).sorted())")
        #expect(last >= stopped)
        #expect(slots.count >= 60)
    }

    @Test("catch_up skip, the leader SIGKILLed one second before a slot and the standby paused until 5 s past it: the standby takes over and fires that slot, once, late but on time")
    func leaderKilledBeforeSlot() async throws {
        let queue = freshQueueName("beat-skip")
        let path = try scheduleFile("""
            entries:
              - {name: quarter, cron: "*/15 * * * * *", kind: noop, queue: \(queue), catch_up: skip, overlap: allow}
            """)
        let q = try makeDriver()
        let scheduleID = try await scheduleIdentity(path)
        var beats = try (0..<2).map { _ in try ChildProcess(dbq, ["beat", "--schedule", path], environment: env) }
        defer { for beat in beats { beat.signal(SIGCONT); beat.signal(SIGTERM) } }
        #expect(try await eventually(.seconds(90)) { try await q.beatLeader(schedule: scheduleID) != nil })
        // The next slot at least 3 s away; the leader dies one second before it.
        let now = Date().timeIntervalSince1970
        var slot = (Int(now) / 15 + 1) * 15
        if Double(slot) - now < 3 { slot += 15 }
        let token = try #require(try await q.beatLeader(schedule: scheduleID))
        let pid = try #require(Int32(token.split(separator: ":")[1]))
        let leader = try #require(beats.first { $0.pid == pid }, "leader \(token) is not one of ours")
        let standby = try #require(beats.first { $0.pid != pid })
        // One second before the slot the leader dies, and the standby is slow too (paused,
        // as by a busy host) until the slot is 5 s late: the takeover comes after the lock's
        // 5 s to live, later than a 5 s window allowed.
        let sent = await TimedSignals.run([
            .init(at: Date(timeIntervalSince1970: Double(slot) - 1), [(standby.pid, SIGSTOP), (leader.pid, SIGKILL)]),
            .init(at: Date(timeIntervalSince1970: Double(slot) + 5), [(standby.pid, SIGCONT)]),
        ])
        _ = await leader.wait(timeout: .seconds(5))
        beats.removeAll { $0.pid == pid }
        let taken = try await eventually(.seconds(30)) { try await firedSlots(queue).contains(slot) }
        let slots = try await firedSlots(queue)
        #expect(taken, "slot \(slot) was dropped: fired \(slots), signals sent at \(sent.map { $0.timeIntervalSince1970 - Double(slot) }) s from it, survivor: \(beats.first?.stderr.suffix(1500) ?? "")")
        #expect(Set(slots).count == slots.count, "a slot fired twice: \(slots)")
    }

    @Test("beat down for 5 s on an every-second schedule, then restarted: skip, once and all do what they say",
          arguments: ["skip", "once", "all"])
    func downtime(policy: String) async throws {
        let queue = freshQueueName("down-\(policy)")
        let path = try scheduleFile("""
            entries:
              - {name: every-second, cron: "* * * * * *", kind: noop, queue: \(queue), catch_up: \(policy), overlap: allow}
            """)
        let first = try ChildProcess(dbq, ["beat", "--schedule", path], environment: env)
        #expect(try await eventually(.seconds(90)) { try await firedSlots(queue).count >= 2 })
        first.signal(SIGTERM)
        #expect(await first.wait(timeout: .seconds(10)) == 0)
        let before = try await firedSlots(queue)
        let downFrom = try #require(before.last)
        try await Task.sleep(for: .seconds(5))
        let restart = Int(Date().timeIntervalSince1970)
        let second = try ChildProcess(dbq, ["beat", "--schedule", path], environment: env)
        #expect(try await eventually(.seconds(90)) { try await (firedSlots(queue).last ?? 0) >= restart + 1 })
        second.signal(SIGTERM)
        #expect(await second.wait(timeout: .seconds(10)) == 0)
        let after = try await firedSlots(queue)
        #expect(Set(after).count == after.count, "a slot fired twice")
        let last = try #require(after.last)
        // The old part of the gap: seconds well before the restart (a one-second cadence
        // makes the newest missed slot "now", so skip and once look alike at the edge;
        // the planner tests tell them apart over a 5-minute gap).
        let oldGap = after.filter { $0 > downFrom && $0 < restart - Int(SlotPlanner.onTime) - 1 }
        if policy == "all" {
            #expect(after.filter { $0 > downFrom } == Array((downFrom + 1)...last), "all: every missed second fires")
        } else {
            #expect(oldGap.isEmpty, "\(policy): the old part of the gap must stay empty, got \(oldGap)")
            #expect(after.contains { $0 >= restart }, "\(policy): the beat fires again after the restart")
        }
    }

    @Test("overlap skip: a slow entry is not queued again while its last run is pending or running")
    func overlapSkip() async throws {
        let queue = freshQueueName("overlap")
        let path = try scheduleFile("""
            entries:
              - {name: slow, cron: "* * * * * *", kind: sleep, payload: {seconds: 2.5}, queue: \(queue), catch_up: all, overlap: skip}
            """)
        let worker = try ChildProcess(dbq, ["worker", "--queues", queue, "--concurrency", "4", "--idle-wait", "200ms"], environment: env)
        let beat = try ChildProcess(dbq, ["beat", "--schedule", path], environment: env)
        let q = try makeDriver()
        // Two runs done, whatever the time the processes took to start.
        #expect(try await eventually(.seconds(120)) { try await q.list(queue: queue, state: .succeeded, limit: 100).count >= 2 })
        beat.signal(SIGTERM)
        #expect(await beat.wait(timeout: .seconds(10)) == 0)
        #expect(try await eventually(.seconds(30)) {
            let running = try await q.list(queue: queue, state: .running), pending = try await q.list(queue: queue, state: .pending)
            return running.isEmpty && pending.isEmpty
        })
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(10)) == 0)
        let jobs = try await q.list(queue: queue, state: .succeeded, limit: 100).sorted { ($0.startedAt ?? .distantPast) < ($1.startedAt ?? .distantPast) }
        #expect(jobs.count >= 2)
        for (a, b) in zip(jobs, jobs.dropFirst()) {
            #expect(try #require(b.startedAt) >= (try #require(a.finishedAt)), "two runs overlapped")
        }
        let state = try await q.beatState(entry: "slow", queue: queue)
        #expect(state.overlapSkipped > 0)
    }

    @Test("beat status: leader, last fire and outcome, and exit 2 on alert")
    func status() async throws {
        let queue = freshQueueName("status")
        let path = try scheduleFile("""
            entries:
              - {name: fresh, cron: "* * * * * *", kind: noop, queue: \(queue), alert_after: 1h}
              - {name: stale, cron: "* * * * * *", kind: noop, queue: \(queue)-never, alert_after: 2s}
            """)
        let worker = try ChildProcess(dbq, ["worker", "--queues", queue, "--idle-wait", "200ms"], environment: env)
        let beat = try ChildProcess(dbq, ["beat", "--schedule", path], environment: env)
        var last: CommandResult?
        // Until the fresh entry has a success and the stale one has gone 2 s without one.
        _ = try await eventually(.seconds(90)) {
            let r = try await runCommand(dbq, ["beat", "status", "--schedule", path, "--json"], environment: env)
            last = r
            return r.stdout.contains(#""lastJobState" : "succeeded""#) && r.stdout.contains(#""alert" : true"#)
        }
        let result = try #require(last)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stdout.contains(#""alert" : true"#) && result.stdout.contains(#""alert" : false"#))
        #expect(result.stdout.contains(#""lastJobState" : "succeeded""#), "\(result.stdout)")
        #expect(result.stdout.contains(#""leader" : ""#))
        beat.signal(SIGTERM)
        worker.signal(SIGTERM)
        #expect(await beat.wait(timeout: .seconds(10)) == 0)
        #expect(await worker.wait(timeout: .seconds(10)) == 0)
    }

    @Test("a weekly entry's success outlives its job's hash: beat status shows it and no alert")
    func weeklySuccessAfterExpiry() async throws {
        let queue = freshQueueName("weekly")
        let path = try scheduleFile("""
            entries:
              - {name: weekly-verify, cron: "0 4 * * 0", kind: noop, queue: \(queue), alert_after: 8d}
            """)
        let q = try makeDriver()
        let envelope = noop(queue)
        #expect(try await q.beatFire(entry: "weekly-verify", slot: Date(timeIntervalSinceNow: -60), skipIfRunning: true, envelope: envelope)
                == .fired(id: envelope.id))
        let worker = try ChildProcess(dbq, ["worker", "--queues", queue, "--exit-when-idle"], environment: env)
        #expect(await worker.wait(timeout: .seconds(60)) == 0)
        #expect(try await q.job(envelope.id, queue: queue)?.state == "succeeded")
        // As if the beat had watched the entry for nine days, and the job's hash had expired since.
        let keys = RedisQueueKeys(queue: queue)
        let nineDaysAgo = Int((Date().timeIntervalSince1970 - 9 * 86_400) * 1000)
        try await q.nodes.send(key: keys.routing, "HSET", RedisArgument(keys.beatEntry("weekly-verify")), "since", RedisArgument(nineDaysAgo))
        try await q.nodes.send(key: keys.routing, "DEL", RedisArgument(keys.job(envelope.id)))
        let result = try await runCommand(dbq, ["beat", "status", "--schedule", path, "--json"], environment: env)
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains(#""alert" : false"#))
        #expect(result.stdout.contains(#""lastJobState" : "succeeded""#), "\(result.stdout)")
        #expect(result.stdout.contains(#""lastSuccess" : "#))
    }
}
