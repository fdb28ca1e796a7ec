import Beat
import DBQCommand
import Foundation
import Queue
import RedisQueue

/// The beat's view of the Redis queue.
struct RedisBeatDriver: BeatDriver {
    let queue: RedisQueue

    func lead(schedule: String, token: String, ttl: Duration) async throws -> Bool {
        try await queue.beatLead(schedule: schedule, token: token, ttl: ttl)
    }

    func resign(schedule: String, token: String) async throws {
        try await queue.beatResign(schedule: schedule, token: token)
    }

    func cursor(entry: ScheduleEntry) async throws -> Date? {
        try await queue.beatState(entry: entry.name, queue: entry.queue).cursor
    }

    func fire(entry: ScheduleEntry, slot: Date, envelope: JobEnvelope) async throws -> Bool {
        if case .fired = try await queue.beatFire(entry: entry.name, slot: slot, skipIfRunning: entry.skipIfRunning, envelope: envelope) {
            return true
        }
        return false
    }

    func advance(entry: ScheduleEntry, to cursor: Date) async throws {
        try await queue.beatAdvance(entry: entry.name, queue: entry.queue, cursor: cursor)
    }
}
