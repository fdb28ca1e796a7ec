import Foundation
import Synchronization

/// A queue in this process's memory with the Redis queue's semantics (leases, fencing
/// tokens, unique keys, delayed jobs, rescue): for unit tests and `dbq run`. The clock is
/// a parameter, so lease lapses and delays are tested without waiting.
public final class MemoryQueue: JobQueueDriver {
    public struct Record: Sendable {
        public var envelopeJSON: String
        public var envelope: JobEnvelope
        public var state: JobState
        public var attempt = 0
        public var token: Int64 = 0
        public var leaseDeadline: Int64 = 0
        public var runAt: Int64 = 0
        public var sequence: Int64 = 0
        public var worker: String?
        public var error: String?
        public var result: JSONValue?
        public var progress: JobProgress?
        public var cancelRequested = false
    }

    private struct State {
        var jobs: [String: Record] = [:]
        var unique: [String: String] = [:]
        var fence: Int64 = 0
        var sequence: Int64 = 0
    }

    private let state = Mutex(State())
    private let clock: @Sendable () -> Int64
    private let wake = AsyncSignal()

    /// `clock` returns milliseconds; by default the wall clock.
    public init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.clock = clock
    }

    public func record(_ id: String) -> Record? { state.withLock { $0.jobs[id] } }

    public func push(_ envelope: JobEnvelope) async throws -> PushResult {
        try envelope.validate()
        let now = clock()
        let result = state.withLock { s -> PushResult in
            if s.jobs[envelope.id] != nil { return .merged(existingID: envelope.id) }
            if let key = envelope.uniqueKey, let holder = s.unique["\(envelope.queue)/\(key)"] { return .merged(existingID: holder) }
            let runAt = envelope.runAt.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
            s.sequence += 1
            var record = Record(envelopeJSON: envelope.encoded(), envelope: envelope, state: runAt > now ? .scheduled : .pending)
            record.runAt = runAt
            record.sequence = s.sequence
            s.jobs[envelope.id] = record
            if let key = envelope.uniqueKey { s.unique["\(envelope.queue)/\(key)"] = envelope.id }
            return .queued(id: envelope.id)
        }
        wake.signal()
        return result
    }

    public func fetch(queue: String, max: Int, worker: String, lease: Duration) async throws -> FetchResult {
        let now = clock()
        return state.withLock { s in
            for (id, record) in s.jobs where record.envelope.queue == queue && record.state == .scheduled && record.runAt <= now {
                s.jobs[id]!.state = .pending
            }
            let ready = s.jobs.values.filter { $0.envelope.queue == queue && $0.state == .pending }
                .sorted { ($0.envelope.priority, -$0.sequence) > ($1.envelope.priority, -$1.sequence) }
                .prefix(max)
            var leased: [LeasedJob] = []
            for record in ready {
                let id = record.envelope.id
                s.fence += 1
                s.jobs[id]!.state = .running
                s.jobs[id]!.attempt += 1
                s.jobs[id]!.token = s.fence
                s.jobs[id]!.leaseDeadline = now + lease.milliseconds
                s.jobs[id]!.worker = worker
                leased.append(LeasedJob(lease: Lease(id: id, queue: queue, token: s.fence), attempt: s.jobs[id]!.attempt, envelopeJSON: record.envelopeJSON))
            }
            let next = s.jobs.values.filter { $0.envelope.queue == queue && $0.state == .scheduled }.map(\.runAt).min()
            return FetchResult(jobs: leased, nextScheduledIn: next.map { .milliseconds(Swift.max(0, $0 - now)) })
        }
    }

    public func waitForWork(queues: [String], timeout: Duration) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.wake.wait() }
            group.addTask { try await Task.sleep(for: timeout) }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func holds(_ s: State, _ lease: Lease) -> Bool {
        guard let record = s.jobs[lease.id] else { return false }
        return record.state == .running && record.token == lease.token
    }

    public func heartbeat(_ leases: [Lease], lease: Duration) async throws -> [LeaseStatus] {
        let now = clock()
        return state.withLock { s in
            leases.map { l in
                guard holds(s, l) else { return .lost }
                s.jobs[l.id]!.leaseDeadline = now + lease.milliseconds
                return s.jobs[l.id]!.cancelRequested ? .cancelRequested : .held
            }
        }
    }

    public func finish(_ completions: [(Lease, Outcome)]) async throws -> [Bool] {
        let now = clock()
        let accepted = state.withLock { s in
            completions.map { lease, outcome -> Bool in
                guard holds(s, lease) else { return false }
                var record = s.jobs[lease.id]!
                // A job whose cancellation was asked for is not run again (as the Redis queue).
                var outcome = outcome
                switch outcome {
                case .retry, .released: if record.cancelRequested { outcome = .cancelled }
                default: break
                }
                switch outcome {
                case .succeeded(let result):
                    record.state = .succeeded
                    record.result = result
                case .retry(let after, let error):
                    record.state = .scheduled
                    record.runAt = now + after
                    record.error = error
                case .dead(let error):
                    record.state = .dead
                    record.error = error
                case .released:
                    record.state = .pending
                    record.attempt -= 1
                case .cancelled:
                    record.state = .cancelled
                }
                record.token = 0
                if record.state.isFinished, let key = record.envelope.uniqueKey, s.unique["\(lease.queue)/\(key)"] == lease.id {
                    s.unique["\(lease.queue)/\(key)"] = nil
                }
                s.jobs[lease.id] = record
                return true
            }
        }
        wake.signal()
        return accepted
    }

    public func progress(_ lease: Lease, _ progress: JobProgress) async throws {
        state.withLock { s in
            if holds(s, lease) { s.jobs[lease.id]!.progress = progress }
        }
    }

    public func rescue(queue: String) async throws -> (requeued: Int, dead: Int) {
        let now = clock()
        return state.withLock { s in
            var requeued = 0, dead = 0
            for (id, record) in s.jobs where record.envelope.queue == queue && record.state == .running && record.leaseDeadline <= now {
                s.jobs[id]!.token = 0
                let reason = "lease lapsed on attempt \(record.attempt) (worker \(record.worker ?? "?") stopped renewing it)"
                s.jobs[id]!.error = reason
                if record.attempt >= record.envelope.maxAttempts {
                    s.jobs[id]!.state = .dead
                    dead += 1
                    if let key = record.envelope.uniqueKey { s.unique["\(queue)/\(key)"] = nil }
                } else {
                    s.jobs[id]!.state = .pending
                    requeued += 1
                }
            }
            return (requeued, dead)
        }
    }

    /// Asks for a job to be cancelled: at once if it is waiting, at its next heartbeat if running.
    public func cancel(_ id: String) -> JobState? {
        state.withLock { s in
            guard var record = s.jobs[id] else { return nil }
            switch record.state {
            case .pending, .scheduled:
                record.state = .cancelled
                if let key = record.envelope.uniqueKey { s.unique["\(record.envelope.queue)/\(key)"] = nil }
            case .running:
                record.cancelRequested = true
            default:
                break
            }
            s.jobs[id] = record
            return record.state
        }
    }
}
