import Foundation
import Queue
import RedisClient

/// What Redis keeps of one schedule entry.
public struct BeatEntryState: Sendable, Equatable {
    /// The newest slot handled (fired, or dropped by catch-up or overlap).
    public var cursor: Date?
    /// The slot and job of the last fire.
    public var lastSlot: Date?
    public var lastJobID: String?
    /// When a job this entry fired last succeeded: recorded by the script that records
    /// the job's outcome, so it outlives the job's hash.
    public var lastSuccess: Date?
    /// How the most recently ended job of this entry ended (`succeeded`, `dead`,
    /// `cancelled`), which job, and when.
    public var lastOutcome: String?
    public var lastOutcomeJobID: String?
    public var lastOutcomeAt: Date?
    /// When the entry was first seen by a beat.
    public var since: Date?
    public var overlapSkipped: Int
}

extension RedisQueueKeys {
    /// The beat leader lock of one schedule (named by `Schedule.identity`).
    public static func beatLeader(_ schedule: String) -> String { "dbq:beat:leader:" + schedule }
    public func beatEntry(_ entry: String) -> String { prefix + "beat:" + entry }
}

extension RedisQueue {
    /// Takes or renews the leader lock for `token`. True while leading.
    public func beatLead(schedule: String, token: String, ttl: Duration) async throws -> Bool {
        try await nodes.run(QueueScripts.lead, keys: [RedisArgument(RedisQueueKeys.beatLeader(schedule))],
                            arguments: [RedisArgument(token), RedisArgument(Int(ttl.milliseconds))], idempotent: true).int == 1
    }

    /// The token of the current leader, if any.
    public func beatLeader(schedule: String) async throws -> String? {
        try await nodes.send(key: RedisQueueKeys.beatLeader(schedule), idempotent: true, "GET", RedisArgument(RedisQueueKeys.beatLeader(schedule))).string
    }

    /// Gives up the lock if `token` holds it (on shutdown, so another beat takes over at once).
    public func beatResign(schedule: String, token: String) async throws {
        try await nodes.run(QueueScripts.resign, keys: [RedisArgument(RedisQueueKeys.beatLeader(schedule))], arguments: [RedisArgument(token)], idempotent: true)
    }

    public func beatState(entry: String, queue: String) async throws -> BeatEntryState {
        let keys = RedisQueueKeys(queue: queue)
        let reply = try await nodes.send(key: keys.routing, idempotent: true, "HMGET", RedisArgument(keys.beatEntry(entry)),
                                         "cursor", "slot", "job", "success", "since", "overlap_skipped",
                                         "outcome", "outcome_job", "outcome_at")
        let v = reply.array ?? []
        func date(_ i: Int) -> Date? { v.count > i ? v[i].string.flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) } : nil }
        func string(_ i: Int) -> String? { v.count > i ? v[i].string : nil }
        return BeatEntryState(cursor: date(0), lastSlot: date(1), lastJobID: string(2),
                              lastSuccess: date(3), lastOutcome: string(6), lastOutcomeJobID: string(7), lastOutcomeAt: date(8),
                              since: date(4), overlapSkipped: v.count > 5 ? v[5].int ?? 0 : 0)
    }

    public enum FireResult: Sendable, Equatable {
        case fired(id: String)
        case alreadyHandled
        case skippedOverlap(previousID: String)
    }

    /// Fires one slot of an entry at most once (see `QueueScripts.fireSlot`).
    public func beatFire(entry: String, slot: Date, skipIfRunning: Bool, envelope: JobEnvelope) async throws -> FireResult {
        try envelope.validate()
        try await nodes.send(key: RedisQueueKeys.queues, idempotent: true, "SADD", RedisArgument(RedisQueueKeys.queues), RedisArgument(envelope.queue))
        let reply = try await runQueueScript(QueueScripts.fireSlot, queue: envelope.queue, [
            RedisArgument(entry), RedisArgument(Int(slot.timeIntervalSince1970 * 1000)), RedisArgument(skipIfRunning ? 1 : 0),
            RedisArgument(envelope.id), RedisArgument(envelope.encoded()), RedisArgument(envelope.priority), RedisArgument(envelope.maxAttempts),
        ])
        let parts = reply.array ?? []
        switch parts.first?.int {
        case 1: return .fired(id: parts[1].string ?? envelope.id)
        case 2: return .skippedOverlap(previousID: parts[1].string ?? "")
        default: return .alreadyHandled
        }
    }

    /// Moves an entry's cursor forward (never back).
    public func beatAdvance(entry: String, queue: String, cursor: Date) async throws {
        try await runQueueScript(QueueScripts.advanceCursor, queue: queue, [RedisArgument(entry), RedisArgument(Int(cursor.timeIntervalSince1970 * 1000))])
    }
}
