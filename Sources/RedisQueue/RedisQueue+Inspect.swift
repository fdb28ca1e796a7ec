import DBQSupport
import Foundation
import Queue
import RedisClient

/// One job as stored, for `dbq jobs show` and listings. Its JSON form is stable.
public struct JobRecord: Sendable, Codable, Equatable {
    public var id: String
    public var queue: String
    public var kind: String?
    public var state: String
    public var attempt: Int
    public var maxAttempts: Int?
    public var priority: Int?
    public var enqueuedAt: Date?
    public var runAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var leaseUntil: Date?
    public var worker: String?
    public var error: String?
    public var result: JSONValue?
    public var progress: JobProgress?
    public var payload: JSONValue?
    public var payloadVersion: Int?
    public var uniqueKey: String?
    public var enqueuedBy: String?
    public var cancelRequested: Bool

    public init(id: String, queue: String, kind: String?, state: String, attempt: Int = 0, maxAttempts: Int? = nil, priority: Int? = nil,
                enqueuedAt: Date? = nil, runAt: Date? = nil, startedAt: Date? = nil, finishedAt: Date? = nil, leaseUntil: Date? = nil,
                worker: String? = nil, error: String? = nil, result: JSONValue? = nil, progress: JobProgress? = nil, payload: JSONValue? = nil,
                payloadVersion: Int? = nil, uniqueKey: String? = nil, enqueuedBy: String? = nil, cancelRequested: Bool = false) {
        self.id = id
        self.queue = queue
        self.kind = kind
        self.state = state
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.priority = priority
        self.enqueuedAt = enqueuedAt
        self.runAt = runAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.leaseUntil = leaseUntil
        self.worker = worker
        self.error = error
        self.result = result
        self.progress = progress
        self.payload = payload
        self.payloadVersion = payloadVersion
        self.uniqueKey = uniqueKey
        self.enqueuedBy = enqueuedBy
        self.cancelRequested = cancelRequested
    }

    static let fields = ["state", "attempt", "max", "priority", "enqueued", "run_at", "started", "finished", "lease",
                         "worker", "error", "result", "progress", "envelope", "unique", "cancel"]

    init?(id: String, queue: String, values: [RedisValue]) {
        guard values.count == Self.fields.count, let state = values[0].string else { return nil }
        func date(_ v: RedisValue) -> Date? {
            guard let ms = v.string.flatMap(Double.init), ms > 0 else { return nil }
            return Date(timeIntervalSince1970: ms / 1000)
        }
        self.id = id
        self.queue = queue
        self.state = state
        attempt = values[1].int ?? 0
        maxAttempts = values[2].int
        priority = values[3].int
        enqueuedAt = date(values[4])
        runAt = date(values[5])
        startedAt = date(values[6])
        finishedAt = date(values[7])
        leaseUntil = date(values[8])
        worker = values[9].string
        error = values[10].string.flatMap { $0.isEmpty ? nil : $0 }
        result = values[11].string.flatMap { $0.isEmpty ? nil : try? JSONValue(json: $0) }
        progress = values[12].bytes.flatMap { try? JSONDecoder().decode(JobProgress.self, from: Data($0)) }
        if let text = values[13].bytes, let envelope = try? JobEnvelope.decoder.decode(JobEnvelope.self, from: Data(text)) {
            kind = envelope.kind
            payload = envelope.payload
            payloadVersion = envelope.version
            enqueuedBy = envelope.enqueuedBy
        } else if let text = values[13].string {
            kind = "(malformed envelope)"
            payload = .string(text)
        }
        uniqueKey = values[14].string.flatMap { $0.isEmpty ? nil : $0 }
        cancelRequested = values[15].string == "1"
    }
}

/// Counts of one queue, for `dbq queues`.
public struct QueueStats: Sendable, Codable, Equatable {
    public var queue: String
    public var pending: Int
    public var scheduled: Int
    public var running: Int
    public var succeeded: Int
    public var dead: Int
    public var cancelled: Int
    /// Seconds the oldest pending job has waited.
    public var oldestPendingSeconds: Double?
    /// Workers seen in the last 30 s that take this queue.
    public var workers: Int
}

extension RedisQueue: WorkerRegistry {
    public func announce(_ presence: WorkerPresence) async throws {
        let json = String(decoding: try JobEnvelope.encoder.encode(presence), as: UTF8.self)
        try await nodes.send(key: RedisQueueKeys.workers, idempotent: true, "HSET", RedisArgument(RedisQueueKeys.workers), RedisArgument(presence.id), RedisArgument(json))
    }

    public func withdraw(_ workerID: String) async throws {
        try await nodes.send(key: RedisQueueKeys.workers, idempotent: true, "HDEL", RedisArgument(RedisQueueKeys.workers), RedisArgument(workerID))
    }

    /// Workers seen within `window`; older entries are removed.
    public func workers(window: Duration = Worker.presenceInterval * 3) async throws -> [WorkerPresence] {
        let reply = try await nodes.send(key: RedisQueueKeys.workers, idempotent: true, "HGETALL", RedisArgument(RedisQueueKeys.workers))
        let items = reply.array ?? []
        var alive: [WorkerPresence] = []
        var stale: [RedisArgument] = []
        for i in stride(from: 0, to: items.count - 1, by: 2) {
            guard let bytes = items[i + 1].bytes, let presence = try? JobEnvelope.decoder.decode(WorkerPresence.self, from: Data(bytes)) else { continue }
            if Date().timeIntervalSince(presence.seenAt) <= window.seconds { alive.append(presence) }
            else if Date().timeIntervalSince(presence.seenAt) > 3600 { stale.append(RedisArgument(presence.id)) }
        }
        if !stale.isEmpty { try await nodes.send(RedisCommand(["HDEL", RedisArgument(RedisQueueKeys.workers)] + stale), key: RedisQueueKeys.workers, idempotent: true) }
        return alive.sorted { $0.id < $1.id }
    }

    /// Every queue ever pushed to.
    public func queueNames() async throws -> [String] {
        let reply = try await nodes.send(key: RedisQueueKeys.queues, idempotent: true, "SMEMBERS", RedisArgument(RedisQueueKeys.queues))
        return (reply.array ?? []).compactMap(\.string).sorted()
    }

    /// One job, looked up in `queue` or, if nil, in every known queue.
    public func job(_ id: String, queue: String? = nil) async throws -> JobRecord? {
        var candidates = [String]()
        if let queue { candidates = [queue] } else { candidates = try await queueNames() }
        for name in candidates {
            let keys = RedisQueueKeys(queue: name)
            let reply = try await nodes.send(RedisCommand(["HMGET", RedisArgument(keys.job(id))] + JobRecord.fields.map { RedisArgument($0) }), key: keys.routing, idempotent: true)
            if let values = reply.array, let record = JobRecord(id: id, queue: name, values: values) { return record }
        }
        return nil
    }

    /// Jobs of a queue in a state, newest first for finished states, next first otherwise.
    public func list(queue: String, state: JobState, limit: Int = 100) async throws -> [JobRecord] {
        let keys = RedisQueueKeys(queue: queue)
        let set = RedisArgument(keys.set(for: state.rawValue))
        let range = state.isFinished
            ? RedisCommand("ZREVRANGE", set, 0, RedisArgument(limit - 1))
            : RedisCommand("ZRANGE", set, 0, RedisArgument(limit - 1))
        let ids = (try await nodes.send(range, key: keys.routing, idempotent: true).array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return [] }
        let replies = try await nodes.pipeline(ids.map { id in
            RedisCommand(["HMGET", RedisArgument(keys.job(id))] + JobRecord.fields.map { RedisArgument($0) })
        }, key: keys.routing, idempotent: true)
        return zip(ids, replies).compactMap { id, reply in reply.array.flatMap { JobRecord(id: id, queue: queue, values: $0) } }
    }

    /// Cancels a job: at once if waiting, at its next heartbeat if running. Returns the
    /// state after, or nil if there is no such job.
    public func cancel(_ id: String, queue: String? = nil) async throws -> String? {
        guard let record = try await job(id, queue: queue) else { return nil }
        let reply = try await runQueueScript(QueueScripts.cancel, queue: record.queue, [RedisArgument(id), RedisArgument(Int(keepFailed.milliseconds))])
        return reply.string
    }

    /// Puts a dead, cancelled or succeeded job back to pending with fresh attempts.
    public func retry(_ id: String, queue: String? = nil) async throws -> String? {
        guard let record = try await job(id, queue: queue) else { return nil }
        let reply = try await runQueueScript(QueueScripts.retry, queue: record.queue, [RedisArgument(id)])
        return reply.string
    }

    /// Removes the finished jobs of one state (all, or older than `olderThan`). Returns how many.
    public func purge(queue: String, state: JobState, olderThan: Duration = .zero) async throws -> Int {
        var total = 0
        while true {
            let reply = try await runQueueScript(QueueScripts.purge, queue: queue, [RedisArgument(state.rawValue), RedisArgument(Int(olderThan.milliseconds))])
            let n = reply.int ?? 0
            total += n
            if n < 10_000 { return total }
        }
    }

    public func stats(queue: String, workers alive: [WorkerPresence]) async throws -> QueueStats {
        let keys = RedisQueueKeys(queue: queue)
        let replies = try await nodes.pipeline([
            RedisCommand("ZCARD", RedisArgument(keys.pending)), RedisCommand("ZCARD", RedisArgument(keys.scheduled)),
            RedisCommand("ZCARD", RedisArgument(keys.running)), RedisCommand("ZCARD", RedisArgument(keys.succeeded)),
            RedisCommand("ZCARD", RedisArgument(keys.dead)), RedisCommand("ZCARD", RedisArgument(keys.cancelled)),
            RedisCommand("TIME"),
        ], key: keys.routing, idempotent: true)
        // The pending score is priority band + enqueue ms: the oldest is the smallest
        // time part over the bands.
        var oldest: Double?
        if (replies[0].int ?? 0) > 0, let time = replies[6].array, let s = time.first?.int, let us = time.last?.int {
            let now = Double(s) * 1000 + Double(us) / 1000
            let band = 2_199_023_255_552.0
            let epoch = 1_735_689_600_000.0
            var commands: [RedisCommand] = []
            for b in 0...9 {
                commands.append(RedisCommand("ZRANGEBYSCORE", RedisArgument(keys.pending), RedisArgument(Double(b) * band),
                                             RedisArgument("(\(Double(b + 1) * band)"), "WITHSCORES", "LIMIT", 0, 1))
            }
            let firsts = try await nodes.pipeline(commands, key: keys.routing, idempotent: true)
            for (b, reply) in firsts.enumerated() {
                guard let pair = reply.array, pair.count == 2, let score = pair[1].string.flatMap(Double.init) else { continue }
                let enqueued = score - Double(b) * band + epoch
                let age = max(0, (now - enqueued) / 1000)
                oldest = max(oldest ?? 0, age)
            }
        }
        return QueueStats(
            queue: queue, pending: replies[0].int ?? 0, scheduled: replies[1].int ?? 0, running: replies[2].int ?? 0,
            succeeded: replies[3].int ?? 0, dead: replies[4].int ?? 0, cancelled: replies[5].int ?? 0,
            oldestPendingSeconds: oldest, workers: alive.filter { $0.queues.contains(queue) }.count)
    }
}
