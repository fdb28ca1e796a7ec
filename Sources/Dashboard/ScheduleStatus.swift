import Beat
import Foundation
import RedisQueue

/// Per schedule entry: next fire, last fire and its job's outcome, time since the last
/// success, and whether that is an alert. `dbq beat status` prints it; the dashboard
/// shows it; one computation for both.
public struct ScheduleReport: Sendable, Encodable {
    public var leader: String?
    public var entries: [ScheduleRow]
}

public struct ScheduleRow: Sendable, Encodable {
    public var name: String, cron: String, timezone: String, queue: String
    public var nextFire: Date?, lastFire: Date?, lastJobID: String?, lastJobState: String?
    public var lastSuccess: Date?, secondsSinceSuccess: Double?, alertAfterSeconds: Double?, alert: Bool, overlapSkipped: Int
}

public enum ScheduleStatus {
    public static func load(_ schedule: Schedule, queue: RedisQueue, now: Date = Date()) async throws -> ScheduleReport {
        var rows: [ScheduleRow] = []
        for entry in schedule.entries {
            let state = try await queue.beatState(entry: entry.name, queue: entry.queue)
            // The job's own record while it exists; once its hash has expired, the
            // outcome its last transition wrote on the entry.
            var jobState = state.lastOutcomeJobID == state.lastJobID ? state.lastOutcome : nil
            var success = state.lastSuccess
            if let id = state.lastJobID, let record = try await queue.job(id, queue: entry.queue) {
                jobState = record.state
                if record.state == "succeeded", let finished = record.finishedAt, finished > (success ?? .distantPast) { success = finished }
            }
            let reference = success ?? state.since
            let alert = entry.alertAfter.map { limit in reference.map { now.timeIntervalSince($0) > limit } ?? false } ?? false
            rows.append(ScheduleRow(name: entry.name, cron: entry.cron.source, timezone: entry.zone.identifier, queue: entry.queue,
                                    nextFire: entry.cron.next(after: now, in: entry.zone), lastFire: state.lastSlot, lastJobID: state.lastJobID,
                                    lastJobState: jobState, lastSuccess: success, secondsSinceSuccess: success.map { now.timeIntervalSince($0) },
                                    alertAfterSeconds: entry.alertAfter, alert: alert, overlapSkipped: state.overlapSkipped))
        }
        return ScheduleReport(leader: try await queue.beatLeader(schedule: schedule.identity), entries: rows)
    }
}
