/// The moves of a job queue. Each is atomic in the driver (one Lua script on Redis, one
/// critical section in memory), and every call on a leased job carries its fencing
/// token: a worker that lost its lease is refused.
public protocol JobQueueDriver: Sendable {
    /// Queues a job (at `runAt` if given). A job with the same unique key queued or
    /// running, or the same id, makes this a merge: nothing new is queued.
    func push(_ envelope: JobEnvelope) async throws -> PushResult

    /// Leases up to `max` jobs of `queue` to `worker` for `lease`, promoting due
    /// scheduled jobs first. Also returns the time of the next scheduled job, if any.
    func fetch(queue: String, max: Int, worker: String, lease: Duration) async throws -> FetchResult

    /// Waits until a job may be ready in one of `queues`, or `timeout` passes.
    func waitForWork(queues: [String], timeout: Duration) async throws

    /// Extends leases. For each: `.held`, `.lost` (stale token: stop, commit nothing)
    /// or `.cancelRequested`.
    func heartbeat(_ leases: [Lease], lease: Duration) async throws -> [LeaseStatus]

    /// Records how attempts ended; for each, whether it was accepted (false: stale token).
    func finish(_ completions: [(Lease, Outcome)]) async throws -> [Bool]

    /// Stores progress if the lease is still held.
    func progress(_ lease: Lease, _ progress: JobProgress) async throws

    /// Returns jobs whose lease lapsed to pending (or dead past max attempts).
    func rescue(queue: String) async throws -> (requeued: Int, dead: Int)
}

public enum LeaseStatus: Sendable, Equatable {
    case held, lost, cancelRequested
}

/// Jobs leased by one fetch, and how long until the next scheduled job of the queue is due.
public struct FetchResult: Sendable {
    public var jobs: [LeasedJob]
    public var nextScheduledIn: Duration?

    public init(jobs: [LeasedJob], nextScheduledIn: Duration?) {
        self.jobs = jobs
        self.nextScheduledIn = nextScheduledIn
    }
}

/// What a worker says of itself, every few seconds, for `dbq queues`.
public struct WorkerPresence: Sendable, Codable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int32
    public var queues: [String]
    public var concurrency: Int
    public var running: Int
    public var startedAt: Date
    public var seenAt: Date

    public init(id: String, host: String, pid: Int32, queues: [String], concurrency: Int, running: Int, startedAt: Date, seenAt: Date) {
        self.id = id
        self.host = host
        self.pid = pid
        self.queues = queues
        self.concurrency = concurrency
        self.running = running
        self.startedAt = startedAt
        self.seenAt = seenAt
    }
}

/// Drivers that keep a registry of live workers.
public protocol WorkerRegistry: Sendable {
    func announce(_ presence: WorkerPresence) async throws
    func withdraw(_ workerID: String) async throws
}
import Foundation
