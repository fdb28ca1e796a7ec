import DBQSupport
import CoreMetrics
import Foundation
import Logging
import Queue
import ServiceLifecycle

/// What the beat needs from the queue: a leader lock, and per entry a cursor and an
/// exactly-once fire of a slot.
public protocol BeatDriver: Sendable {
    /// Takes or renews the lock of the schedule named `schedule`.
    func lead(schedule: String, token: String, ttl: Duration) async throws -> Bool
    func resign(schedule: String, token: String) async throws
    /// The entry's cursor: the newest slot already handled, nil for a new entry.
    func cursor(entry: ScheduleEntry) async throws -> Date?
    /// Queues the slot's job unless the slot was handled already (or, with overlap skip,
    /// the previous job still runs). True if a job was queued.
    func fire(entry: ScheduleEntry, slot: Date, envelope: JobEnvelope) async throws -> Bool
    func advance(entry: ScheduleEntry, to cursor: Date) async throws
}

/// Fires the schedule's slots. Any number may run: one leads by a lock with a token;
/// the others wait to take over within the lock's time. A slot fires at most once
/// however many believe they lead, because its job id is derived from (entry, slot) and
/// the driver fires a slot only past the entry's cursor, atomically.
public final class BeatService: Service {
    let schedule: Schedule
    let driver: any BeatDriver
    let registry: JobRegistry
    let logger: Logger
    public let token: String
    let tick: Duration
    let lockTTL: Duration

    public init(schedule: Schedule, driver: any BeatDriver, registry: JobRegistry, logger: Logger,
                tick: Duration = .milliseconds(250), lockTTL: Duration = .seconds(5)) {
        self.schedule = schedule
        self.driver = driver
        self.registry = registry
        self.logger = logger
        self.tick = tick
        self.lockTTL = lockTTL
        token = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8))"
    }

    /// How late a slot may be and still fire under `catch_up: skip`: longer than the
    /// longest takeover (the dead leader's lock lapsing, then a tick), so a leader killed
    /// just before a slot never makes that slot late; a slot missed while no beat ran at
    /// all is still dropped.
    var onTime: TimeInterval { max(SlotPlanner.onTime, lockTTL.seconds + 2 * tick.seconds + 5) }

    public func run() async throws {
        var leading = false
        var failures = 0
        logger.info("beat started", metadata: ["beat.token": "\(token)", "beat.entries": "\(schedule.entries.count)"])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let now = try await driver.lead(schedule: schedule.identity, token: token, ttl: lockTTL)
                if now != leading {
                    logger.info(now ? "beat leads" : "beat lost the lead", metadata: ["beat.token": "\(token)"])
                    leading = now
                }
                // `dbq_beat_leader`: 1 while this beat leads (a fleet's sum is 1 when all is well).
                Gauge(label: "dbq_beat_leader").record(leading ? 1 : 0)
                if leading {
                    for entry in schedule.entries { try await step(entry, now: Date()) }
                }
                failures = 0
            } catch {
                failures += 1
                logger.warning("beat step failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: Backoff(base: .milliseconds(100), cap: .seconds(2)).delay(attempt: failures - 1))
            }
            try? await Task.sleep(for: tick)
        }
        if leading { try? await driver.resign(schedule: schedule.identity, token: token) }
        logger.info("beat stopped", metadata: ["beat.token": "\(token)"])
    }

    func step(_ entry: ScheduleEntry, now: Date) async throws {
        var cursor = try await driver.cursor(entry: entry)
        if cursor == nil {
            let start = now.addingTimeInterval(-SlotPlanner.newEntryGrace)
            try await driver.advance(entry: entry, to: start)
            cursor = start
        }
        let plan = SlotPlanner.plan(cron: entry.cron, zone: entry.zone, catchUp: entry.catchUp, lastFired: cursor, now: now, onTime: onTime)
        for slot in plan.fire {
            let envelope = try self.envelope(entry, slot: slot)
            if try await driver.fire(entry: entry, slot: slot, envelope: envelope) {
                logger.info("fired", metadata: ["beat.entry": "\(entry.name)", "beat.slot": "\(slot)", "job.id": "\(envelope.id)"])
            }
        }
        if plan.skipped > 0 {
            logger.warning("catch-up dropped missed slots", metadata: ["beat.entry": "\(entry.name)", "beat.skipped": "\(plan.skipped)\(plan.moreSkipped ? "+" : "")"])
        }
        if let last = plan.cursor { try await driver.advance(entry: entry, to: last) }
    }

    func envelope(_ entry: ScheduleEntry, slot: Date) throws -> JobEnvelope {
        guard let defaults = registry.defaults(for: entry.kind) else {
            throw JobError.permanent("unknown job kind '\(entry.kind)' in entry '\(entry.name)'")
        }
        return JobEnvelope(
            id: Self.jobID(entry: entry.name, slot: slot), kind: entry.kind, version: defaults.version, payload: entry.payload,
            queue: entry.queue, priority: entry.priority, maxAttempts: defaults.maxAttempts, timeoutSeconds: defaults.timeout.seconds,
            enqueuedBy: "beat:\(entry.name)@\(ProcessInfo.processInfo.hostName)")
    }

    /// A job id derived from (entry, slot): UUID-shaped (version 8), the same in every
    /// beat process, so a slot's job is one job however often it is pushed.
    public static func jobID(entry: String, slot: Date) -> String {
        let key = Array("dbq-beat|\(entry)|\(Int64(slot.timeIntervalSince1970 * 1000))".utf8)
        let a = FNV1a.hash(key, seed: 0x9E37_79B9), b = FNV1a.hash(key, seed: 0x85EB_CA6B)
        let bytes = (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? a : b) >> (8 * UInt64(i % 8))) }
        return JobID.uuidString(bytes, version: 8)
    }
}

/// FNV-1a, 64 bits: a small stable hash for names derived from names (not for secrets).
enum FNV1a {
    static func hash(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }
}
