import Backups
@testable import Beat
@testable import DatabaseJobs
import DBQSupport
import Foundation
import Queue
import Operations
import Testing

@Suite("Slot planning after downtime (pure, injected clock)")
struct PlannerTests {
    let everyMinute = try! CronExpression("* * * * *")

    func plan(_ catchUp: CatchUp, last: String?, now: String, cron: CronExpression? = nil) -> SlotPlan {
        SlotPlanner.plan(cron: cron ?? everyMinute, zone: utc, catchUp: catchUp, lastFired: last.map(iso), now: iso(now))
    }

    @Test("on time: the slot due now fires under every policy", arguments: [CatchUp.skip, .once, .all(limit: 10)])
    func onTime(policy: CatchUp) {
        let p = plan(policy, last: "2026-01-01T00:00:00Z", now: "2026-01-01T00:01:00.4Z")
        #expect(p.fire.map(isoString) == ["2026-01-01T00:01:00Z"])
        #expect(p.skipped == 0)
        #expect(p.cursor.map(isoString) == "2026-01-01T00:01:00Z")
    }

    @Test("a takeover never makes an on-time slot late: a beat's window is longer than the leader lock can lapse in, and a slot later than it is still dropped under skip")
    func takeoverWindow() {
        let service = BeatService(schedule: Schedule(entries: []), driver: NoDriver(), registry: JobRegistry(), logger: .init(label: "t"))
        #expect(service.onTime > service.lockTTL.seconds + service.tick.seconds)
        // The leader died a second before the slot: the next leader steps in a lock's life later.
        let late = service.lockTTL.seconds + service.tick.seconds + 1
        let fired = SlotPlanner.plan(cron: everyMinute, zone: utc, catchUp: .skip, lastFired: iso("2026-01-01T00:00:00Z"),
                                     now: iso("2026-01-01T00:01:00Z").addingTimeInterval(late), onTime: service.onTime)
        #expect(fired.fire.map(isoString) == ["2026-01-01T00:01:00Z"])
        let missed = SlotPlanner.plan(cron: everyMinute, zone: utc, catchUp: .skip, lastFired: iso("2026-01-01T00:00:00Z"),
                                      now: iso("2026-01-01T00:01:00Z").addingTimeInterval(service.onTime + 1), onTime: service.onTime)
        #expect(missed.fire.isEmpty && missed.skipped == 1)
    }

    @Test("nothing due: nothing fires and the cursor stays")
    func nothingDue() {
        let p = plan(.all(limit: 10), last: "2026-01-01T00:01:00Z", now: "2026-01-01T00:01:59Z")
        #expect(p.fire.isEmpty && p.cursor == nil)
    }

    @Test("down for 5 minutes, back 20 s after a slot: skip fires nothing, once the newest, all every one")
    func fiveMinutesDown() {
        let last = "2026-01-01T00:00:00Z", now = "2026-01-01T00:05:20Z"
        let skip = plan(.skip, last: last, now: now)
        #expect(skip.fire.isEmpty && skip.skipped == 5)
        let once = plan(.once, last: last, now: now)
        #expect(once.fire.map(isoString) == ["2026-01-01T00:05:00Z"] && once.skipped == 4)
        let all = plan(.all(limit: 100), last: last, now: now)
        #expect(all.fire.map(isoString) == (1...5).map { "2026-01-01T00:0\($0):00Z" } && all.skipped == 0)
        for p in [skip, once, all] { #expect(p.cursor.map(isoString) == "2026-01-01T00:05:00Z") }
    }

    @Test("all is bounded: the newest slots fire, the older are counted as skipped")
    func allBounded() {
        let p = plan(.all(limit: 3), last: "2026-01-01T00:00:00Z", now: "2026-01-01T00:10:00Z")
        #expect(p.fire.map(isoString) == ["2026-01-01T00:08:00Z", "2026-01-01T00:09:00Z", "2026-01-01T00:10:00Z"])
        #expect(p.skipped == 7)
    }

    @Test("back on a slot exactly: skip fires it")
    func skipOnSlot() {
        let p = plan(.skip, last: "2026-01-01T00:00:00Z", now: "2026-01-01T00:05:02Z")
        #expect(p.fire.map(isoString) == ["2026-01-01T00:05:00Z"] && p.skipped == 4)
    }

    @Test("a new entry does not fire its past, but fires a slot that is due now")
    func newEntry() {
        #expect(plan(.all(limit: 100), last: nil, now: "2026-01-01T00:05:30Z").fire.isEmpty)
        #expect(plan(.all(limit: 100), last: nil, now: "2026-01-01T00:05:00.5Z").fire.map(isoString) == ["2026-01-01T00:05:00Z"])
        #expect(plan(.all(limit: 100), last: nil, now: "2026-01-01T00:05:03Z").fire.isEmpty)
    }

    @Test("a year of every-second slots: the newest fire, counting stops at 20,000 and says it skipped more")
    func hugeGap() async throws {
        let cron = try CronExpression("* * * * * *")
        // CPU-bound work: on a lane, not on the cooperative pool other tests share.
        let p = try await BlockingLane.detached {
            SlotPlanner.plan(cron: cron, zone: utc, catchUp: .all(limit: 10), lastFired: iso("2025-01-01T00:00:00Z"), now: iso("2026-01-01T00:00:00Z"))
        }
        #expect(p.fire.map(isoString) == (0..<10).reversed().map { isoString(iso("2026-01-01T00:00:00Z").addingTimeInterval(TimeInterval(-$0))) })
        #expect(p.moreSkipped)
        // Work is bounded by what is counted, not by the gap (31.5 million slots).
        #expect(p.skipped == 20_000 - 10, "skipped \(p.skipped)")
    }
}

@Suite("Schedule file")
struct ScheduleTests {
    @Test("a valid schedule with defaults")
    func valid() throws {
        let s = try Schedule.parse("""
            entries:
              - name: nightly
                cron: "0 2 * * *"
                timezone: Europe/Berlin
                kind: sleep
                payload: {seconds: 1}
                catch_up: all
                catch_up_limit: 5
                alert_after: 26h
              - name: ping
                cron: "@hourly"
                kind: noop
                overlap: allow
            """, file: "s.yaml", registry: .builtins)
        #expect(s.entries.count == 2)
        #expect(s.entries[0].zone.identifier == "Europe/Berlin")
        #expect(s.entries[0].catchUp == .all(limit: 5))
        #expect(s.entries[0].alertAfter == 93_600.0)
        #expect(s.entries[0].payload == .object(["seconds": .number(1)]))
        #expect(s.entries[1].queue == "default" && s.entries[1].priority == 5 && !s.entries[1].skipIfRunning)
        #expect(s.entries[1].catchUp == .once)
    }

    @Test("every problem is named with its entry and field")
    func problems() {
        do {
            _ = try Schedule.parse("""
                entries:
                  - name: a
                    cron: "61 * * * *"
                    kind: noop
                  - name: a
                    cron: "0 0 31 2 *"
                    kind: sleep
                  - name: c
                    cron: "* * * * *"
                    kind: sleep
                    payload: {secs: 1}
                    timezone: Mars/Olympus
                    catch_up: sometimes
                    colour: blue
                  - name: d
                    cron: "* * * * *"
                    kind: nosuch
                """, file: "bad.yaml", registry: .builtins)
            Issue.record("accepted")
        } catch {
            let text = error.description
            #expect(text.hasPrefix("schedule bad.yaml has"))
            for fragment in ["entries[0] (a).cron: cron '61 * * * *': minute field '61'", "entries[1] (a).name: 'a' is used twice",
                             "entries[1] (a).cron: cron '0 0 31 2 *': can never fire", "entries[2] (c).timezone: 'Mars/Olympus'",
                             "entries[2] (c).catch_up: 'sometimes'", "entries[2] (c).colour: unknown key",
                             "entries[3] (d).payload: unknown job kind 'nosuch'"] {
                #expect(text.contains(fragment), "missing: \(fragment)\n\(text)")
            }
        }
    }

    @Test("a wrong payload shape is named")
    func payloadShape() {
        do {
            _ = try Schedule.parse("entries:\n  - {name: x, cron: '@daily', kind: sleep, payload: {secs: 1}}\n", file: "f", registry: .builtins)
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("entries[0] (x).payload: payload of kind 'sleep' version 1 does not decode: missing field 'seconds'"))
        }
    }

    @Test("not YAML, or not the expected shape", arguments: ["entries: [", "- a\n- b\n", "entries: 3\n", "other: 1\nentries: []\n"])
    func shape(text: String) {
        #expect(throws: ScheduleError.self) { try Schedule.parse(text, file: "f") }
    }
}

@Suite("The shipped schedule")
struct ShippedScheduleTests {
    @Test("jobs/schedule.yaml is valid against this binary's kinds")
    func valid() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        var registry = JobRegistry.builtins
        registry.registerBackupJobs { throw CancellationError() }
        registry.registerOperationsJobs { throw CancellationError() }
        let schedule = try Schedule.load(path: url.path + "/jobs/schedule.yaml", registry: registry)
        #expect(schedule.entries.map(\.name) == ["fleet-heartbeat", "nightly-backup", "weekly-verify", "daily-retention",
                                                 "nightly-basebackup", "weekly-verify-basebackup", "daily-basebackup-retention",
                                                 "nightly-maintenance", "hourly-health", "hourly-stats"])
        // Point-in-time recovery: the base backups' restore is checked weekly (#34), and a weekly
        // entry waits longer than a week before it counts as late.
        let verify = try #require(schedule.entries.first { $0.name == "weekly-verify-basebackup" })
        #expect(verify.kind == "verify-basebackup" && verify.alertAfter == 8 * 86_400)
    }
}

@Suite("Derived job ids")
struct DerivedIDTests {
    @Test("a slot's job id is stable, UUID-shaped (version 8) and distinct per entry and slot")
    func ids() {
        let slot = iso("2026-01-01T02:00:00Z")
        let id = BeatService.jobID(entry: "nightly", slot: slot)
        #expect(id == BeatService.jobID(entry: "nightly", slot: slot))
        #expect(JobID.isValid(id) && Array(id)[14] == "8")
        #expect(id != BeatService.jobID(entry: "nightly", slot: slot.addingTimeInterval(1)))
        #expect(id != BeatService.jobID(entry: "nightly2", slot: slot))
        let many = Set((0..<10_000).map { BeatService.jobID(entry: "e", slot: slot.addingTimeInterval(Double($0))) })
        #expect(many.count == 10_000)
    }
}

/// A beat driver for tests that never run the beat.
struct NoDriver: BeatDriver {
    func lead(schedule: String, token: String, ttl: Duration) async throws -> Bool { false }
    func resign(schedule: String, token: String) async throws {}
    func cursor(entry: ScheduleEntry) async throws -> Date? { nil }
    func fire(entry: ScheduleEntry, slot: Date, envelope: JobEnvelope) async throws -> Bool { false }
    func advance(entry: ScheduleEntry, to cursor: Date) async throws {}
}
