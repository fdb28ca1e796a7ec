import Foundation
import Queue
import RedisQueue

/// What the dashboard shows and changes. The production source reads Redis on every
/// request (`RedisDashboardData`), so the dashboard keeps no history of its own: it
/// loses nothing on restart and grows with nothing.
public protocol DashboardData: Sendable {
    func queues() async throws -> [QueueStats]
    /// Jobs finished (succeeded or dead) per bucket, oldest bucket first.
    func throughput(queue: String, buckets: Int, bucketSeconds: Int) async throws -> [Int]
    func workers() async throws -> [WorkerPresence]
    func jobs(queue: String?, state: JobState?, kind: String?, limit: Int) async throws -> [JobRecord]
    func job(id: String, queue: String?) async throws -> JobRecord?
    func retry(id: String, queue: String?) async throws -> String?
    func cancel(id: String, queue: String?) async throws -> String?
    func purge(queue: String, state: JobState) async throws -> Int
    func retryAll(queue: String) async throws -> Int
    func schedules() async throws -> ScheduleReport?
    func artefacts() async throws -> [ArtefactRow]
    func record(_ entry: AuditEntry) async throws
    func audit(limit: Int) async throws -> [AuditEntry]
    /// Sign-ins, kept apart from the actions (the newest 1,000).
    func recordSignIn(_ entry: AuditEntry) async throws
    func signIns(limit: Int) async throws -> [AuditEntry]
    /// Counts a failed sign-in from `address`; returns the failures within `window`.
    func countSignInFailure(address: String, window: Duration) async throws -> Int
    func signInFailures(address: String) async throws -> Int
}

/// One backup, export or snapshot as its manifest tells it.
public struct ArtefactRow: Sendable, Equatable {
    public var family: String
    public var id: String
    public var database: String
    public var storage: String
    public var finishedAt: Date
    public var bytes: Int64
    /// "passed", "FAILED", or nil when never verified (backups only).
    public var verification: String?
    public var detail: String

    public init(family: String, id: String, database: String, storage: String, finishedAt: Date, bytes: Int64, verification: String?, detail: String) {
        self.family = family
        self.id = id
        self.database = database
        self.storage = storage
        self.finishedAt = finishedAt
        self.bytes = bytes
        self.verification = verification
        self.detail = detail
    }
}

/// Who did what from the dashboard, and when.
public struct AuditEntry: Sendable, Codable, Equatable {
    public var at: Date
    public var actor: String
    public var address: String
    public var action: String
    public var target: String
    public var outcome: String

    public init(at: Date, actor: String, address: String, action: String, target: String, outcome: String) {
        self.at = at
        self.actor = actor
        self.address = address
        self.action = action
        self.target = target
        self.outcome = outcome
    }
}

/// The dashboard's data from Redis: the same reads and scripts as `dbq queues`, `dbq
/// jobs` and `dbq dead`.
public struct RedisDashboardData: DashboardData {
    let queue: RedisQueue
    let scheduleReport: @Sendable () async throws -> ScheduleReport?
    let artefactRows: @Sendable () async throws -> [ArtefactRow]

    public init(queue: RedisQueue, schedules: @escaping @Sendable () async throws -> ScheduleReport?,
                artefacts: @escaping @Sendable () async throws -> [ArtefactRow]) {
        self.queue = queue
        scheduleReport = schedules
        artefactRows = artefacts
    }

    public func queues() async throws -> [QueueStats] {
        let alive = try await queue.workers()
        var out: [QueueStats] = []
        for name in try await queue.queueNames() { out.append(try await queue.stats(queue: name, workers: alive)) }
        return out
    }

    public func throughput(queue name: String, buckets: Int, bucketSeconds: Int) async throws -> [Int] {
        try await queue.finishedCounts(queue: name, buckets: buckets, bucketSeconds: bucketSeconds)
    }

    public func workers() async throws -> [WorkerPresence] { try await queue.workers() }

    public func jobs(queue name: String?, state: JobState?, kind: String?, limit: Int) async throws -> [JobRecord] {
        var names = [String]()
        if let name { names = [name] } else { names = try await queue.queueNames() }
        let states = state.map { [$0] } ?? [.running, .pending, .scheduled, .dead, .succeeded, .cancelled]
        var out: [JobRecord] = []
        for n in names {
            for s in states {
                // A kind filter reads further, since it drops rows.
                out += try await queue.list(queue: n, state: s, limit: kind == nil ? limit : limit * 10).filter { kind == nil || $0.kind == kind }
            }
        }
        return Array(out.prefix(limit))
    }

    public func job(id: String, queue name: String?) async throws -> JobRecord? { try await queue.job(id, queue: name) }
    public func retry(id: String, queue name: String?) async throws -> String? { try await queue.retry(id, queue: name) }
    public func cancel(id: String, queue name: String?) async throws -> String? { try await queue.cancel(id, queue: name) }
    public func purge(queue name: String, state: JobState) async throws -> Int { try await queue.purge(queue: name, state: state) }

    public func retryAll(queue name: String) async throws -> Int {
        var total = 0
        while true {
            let dead = try await queue.list(queue: name, state: .dead, limit: 500)
            if dead.isEmpty { return total }
            for job in dead where try await queue.retry(job.id, queue: name) == "pending" { total += 1 }
            if dead.count < 500 { return total }
        }
    }

    public func schedules() async throws -> ScheduleReport? { try await scheduleReport() }
    public func artefacts() async throws -> [ArtefactRow] { try await artefactRows() }

    public func record(_ entry: AuditEntry) async throws {
        try await queue.appendAudit(String(decoding: try JobEnvelope.encoder.encode(entry), as: UTF8.self))
    }

    public func audit(limit: Int) async throws -> [AuditEntry] {
        try await queue.audit(limit: limit).compactMap { try? JobEnvelope.decoder.decode(AuditEntry.self, from: Data($0.utf8)) }
    }

    public func recordSignIn(_ entry: AuditEntry) async throws {
        try await queue.appendAudit(String(decoding: try JobEnvelope.encoder.encode(entry), as: UTF8.self), to: RedisQueueKeys.signIns)
    }

    public func signIns(limit: Int) async throws -> [AuditEntry] {
        try await queue.audit(limit: limit, of: RedisQueueKeys.signIns).compactMap { try? JobEnvelope.decoder.decode(AuditEntry.self, from: Data($0.utf8)) }
    }

    public func countSignInFailure(address: String, window: Duration) async throws -> Int {
        try await queue.countSignInFailure(address: address, window: window)
    }

    public func signInFailures(address: String) async throws -> Int {
        try await queue.signInFailures(address: address)
    }
}
