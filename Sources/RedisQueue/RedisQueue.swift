import DBQSupport
import Foundation
import Logging
import Queue
import RedisClient
import Synchronization

/// The production queue driver on Redis. Every state transition is one Lua script
/// (`QueueScripts`); every key is named by `RedisQueueKeys`.
///
/// Connections: one for the worker's blocking wait on the wake lists, and a small set
/// for everything else, so a fetch, a heartbeat and a batch of completions can be in
/// flight together.
public final class RedisQueue: JobQueueDriver {
    public let configuration: RedisConfiguration
    let logger: Logger
    /// The node (or, on a cluster, the nodes) every command goes to.
    public let nodes: RedisNodes
    /// How long finished jobs are kept (their hashes expire, their ids are trimmed).
    public let keepSucceeded: Duration
    public let keepFailed: Duration
    /// On a cluster, one blocking wait per queue (a wait may not span slots).
    private let waits = Mutex<[String: Task<Bool, Never>]>([:])
    /// When set, one worker of the fleet rescues a queue per this interval (the others'
    /// calls in it return at once): the fleet's cost does not grow with its size.
    public let rescueEvery: Duration

    public init(configuration: RedisConfiguration, logger: Logger, connections: Int = 3,
                keepSucceeded: Duration = .seconds(24 * 3600), keepFailed: Duration = .seconds(7 * 24 * 3600), rescueEvery: Duration = .zero) {
        self.configuration = configuration
        self.rescueEvery = rescueEvery
        self.logger = logger
        self.keepSucceeded = keepSucceeded
        self.keepFailed = keepFailed
        nodes = RedisNodes(configuration: configuration, logger: logger, connectionsPerNode: max(1, connections))
    }

    /// Connects, and refuses a Redis (every master of a cluster) that could evict queue
    /// keys under memory pressure. The policy is read with `CONFIG GET`, else from `INFO
    /// memory` (managed Redis and ACL users without `+config` refuse CONFIG); where neither
    /// answers, the server is accepted and the returned warning says what could not be
    /// checked (the caller logs it).
    @discardableResult
    public func checkServer() async throws -> [String] {
        let policies = try await nodes.eachMaster { connection in
            (connection.configuration.endpoint, try await Self.evictionPolicy(connection))
        }
        var warnings: [String] = []
        for (endpoint, policy) in policies {
            let on = nodes.isCluster ? " on \(endpoint)" : ""
            switch policy {
            case .read("noeviction"):
                continue
            case .read(let policy):
                throw RedisError(
                    code: .server,
                    message: "maxmemory-policy is '\(policy)'\(on): under memory pressure Redis would evict queue keys and lose jobs. Set 'maxmemory-policy noeviction' (CONFIG SET maxmemory-policy noeviction, and in redis.conf)",
                    endpoint: endpoint, command: "CONFIG")
            case .unreadable(let why):
                warnings.append("maxmemory-policy could not be read\(on) (\(why)); make sure it is noeviction: any other policy lets Redis evict queue keys and lose jobs")
            }
        }
        for warning in warnings { logger.warning("\(warning)") }
        return warnings
    }

    /// What a server says of its eviction policy.
    public enum EvictionPolicy: Equatable, Sendable { case read(String), unreadable(String) }

    /// `CONFIG GET maxmemory-policy`, else `maxmemory_policy` of `INFO memory`.
    public static func evictionPolicy(_ connection: RedisConnection) async throws -> EvictionPolicy {
        var refusals: [String] = []
        do {
            if let policy = try await connection.send("CONFIG", "GET", "maxmemory-policy").array?.last?.string { return .read(policy) }
            refusals.append("CONFIG GET answered nothing")
        } catch let error as RedisError where error.code == .server {
            refusals.append("CONFIG GET refused: \(error.message)")
        }
        do {
            let info = try await connection.send("INFO", "memory").string ?? ""
            for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("maxmemory_policy:") {
                return .read(String(line.dropFirst("maxmemory_policy:".count)).trimmingCharacters(in: .whitespaces))
            }
            refusals.append("INFO memory has no maxmemory_policy")
        } catch let error as RedisError where error.code == .server {
            refusals.append("INFO refused: \(error.message)")
        }
        return .unreadable(refusals.joined(separator: "; "))
    }

    /// Whether Redis answers PING (for readiness probes): every master of a cluster.
    public func ping() async throws -> Bool {
        try await nodes.eachMaster { try await $0.send("PING").string == "PONG" }.allSatisfy { $0 }
    }

    /// A script of a queue: its fixed keys declared, its prefix first.
    /// Every script but fetch does what it did when it runs twice (tokens, cursors and
    /// ids make them so): they are `idempotent`, sent again across a failover.
    func runQueueScript(_ script: RedisScript, queue: String, _ arguments: [RedisArgument], durable: Bool = false, idempotent: Bool = true) async throws -> RedisValue {
        let keys = RedisQueueKeys(queue: queue)
        return try await nodes.run(script, keys: keys.scriptKeys.map { RedisArgument($0) }, arguments: [RedisArgument(keys.prefix)] + arguments,
                                   durable: durable, idempotent: idempotent)
    }

    func queueCall(_ queue: String, _ arguments: [RedisArgument]) -> (keys: [RedisArgument], arguments: [RedisArgument]) {
        let keys = RedisQueueKeys(queue: queue)
        return (keys.scriptKeys.map { RedisArgument($0) }, [RedisArgument(keys.prefix)] + arguments)
    }

    // MARK: - JobQueueDriver

    public func push(_ envelope: JobEnvelope) async throws -> PushResult {
        try await pushMany([envelope])[0]
    }

    /// Jobs one push script call carries at most.
    static let pushBatch = 500

    /// Pushes many jobs: one script call per queue and batch, pipelined per node.
    public func pushMany(_ envelopes: [JobEnvelope]) async throws -> [PushResult] {
        var byQueue: [String: [Int]] = [:]
        for (i, envelope) in envelopes.enumerated() {
            try envelope.validate()
            byQueue[envelope.queue, default: []].append(i)
        }
        var calls: [(keys: [RedisArgument], arguments: [RedisArgument])] = []
        var members: [[Int]] = []
        for (queue, indices) in byQueue.sorted(by: { $0.key < $1.key }) {
            for start in stride(from: 0, to: indices.count, by: Self.pushBatch) {
                let batch = Array(indices[start..<min(start + Self.pushBatch, indices.count)])
                var arguments = [RedisArgument(0)]
                arguments.reserveCapacity(1 + 6 * batch.count)
                for i in batch {
                    let e = envelopes[i]
                    let runAt = e.runAt.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
                    arguments += [RedisArgument(e.id), RedisArgument(e.encoded()), RedisArgument(e.priority), RedisArgument(Int(runAt)),
                                  RedisArgument(e.uniqueKey ?? ""), RedisArgument(e.maxAttempts)]
                }
                calls.append(queueCall(queue, arguments))
                members.append(batch)
            }
        }
        // The queue set is one global key: one command, on its own node.
        try await nodes.send(RedisCommand(["SADD", RedisArgument(RedisQueueKeys.queues)] + byQueue.keys.sorted().map { RedisArgument($0) }),
                             key: RedisQueueKeys.queues, idempotent: true)
        // Durable: acknowledged once a replica has the jobs (see RedisNodes.runMany).
        // Idempotent (a job id pushed twice is merged): sent again across a failover.
        let replies = try await nodes.runMany(QueueScripts.pushMany, calls: calls, durable: true, idempotent: true)
        var results = [PushResult?](repeating: nil, count: envelopes.count)
        for (reply, batch) in zip(replies, members) {
            if case .error(let message) = reply {
                throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: "EVALSHA")
            }
            // Only the jobs not queued come back: (position in the batch from 1, holder).
            guard let values = reply.array, values.count % 2 == 0, values.count <= 2 * batch.count else {
                throw RedisError(code: .protocolViolation, message: "push script returned \(reply)", endpoint: configuration.endpoint)
            }
            for i in batch { results[i] = .queued(id: envelopes[i].id) }
            for k in stride(from: 0, to: values.count, by: 2) {
                guard let position = values[k].int, (1...batch.count).contains(position) else {
                    throw RedisError(code: .protocolViolation, message: "push script returned \(reply)", endpoint: configuration.endpoint)
                }
                let i = batch[position - 1]
                results[i] = .merged(existingID: values[k + 1].string ?? envelopes[i].id)
            }
        }
        return results.map { $0! }
    }

    public func fetch(queue: String, max: Int, worker: String, lease: Duration) async throws -> FetchResult {
        // Durable: a lease a failover could forget would let a job run twice.
        let reply = try await runQueueScript(QueueScripts.fetch, queue: queue, [
            RedisArgument(max), RedisArgument(worker), RedisArgument(Int(lease.milliseconds)),
        ], durable: true, idempotent: false)
        guard let parts = reply.array, parts.count == 2, let rows = parts[0].array else {
            throw RedisError(code: .protocolViolation, message: "fetch script returned \(reply)", endpoint: configuration.endpoint)
        }
        let jobs = rows.compactMap { row -> LeasedJob? in
            guard let f = row.array, f.count == 4, let id = f[0].string, let token = f[1].int, let attempt = f[2].int,
                  let envelope = f[3].string else { return nil }
            return LeasedJob(lease: Lease(id: id, queue: queue, token: Int64(token)), attempt: attempt, envelopeJSON: envelope)
        }
        let wait = parts[1].int ?? -1
        return FetchResult(jobs: jobs, nextScheduledIn: wait >= 0 ? .milliseconds(wait) : nil)
    }

    public func waitForWork(queues: [String], timeout: Duration) async throws {
        // BLPOP takes seconds with decimals; a token means "look again".
        let seconds = String(format: "%.3f", max(0.001, timeout.seconds))
        guard nodes.isCluster, queues.count > 1 else {
            let keys = queues.map { RedisArgument(RedisQueueKeys(queue: $0).wake) }
            try await nodes.blocking(RedisCommand(["BLPOP"] + keys + [RedisArgument(seconds)]), key: queues.first.map { RedisQueueKeys(queue: $0).routing },
                                     waiter: "wake", timeout: timeout)
            return
        }
        // A cluster refuses a wait across slots: one wait per queue, each on its own
        // connection, kept across calls (a wait still in flight is joined, not doubled).
        let tasks = queues.map { queue in
            waits.withLock { waits -> Task<Bool, Never> in
                if let running = waits[queue] { return running }
                let keys = RedisQueueKeys(queue: queue)
                let task = Task { [nodes] () -> Bool in
                    let reply = try? await nodes.blocking(RedisCommand("BLPOP", RedisArgument(keys.wake), RedisArgument(seconds)),
                                                          key: keys.routing, waiter: "wake:" + queue, timeout: timeout)
                    return reply.map { $0 != .null } ?? false
                }
                waits[queue] = task
                return task
            }
        }
        let first = FirstOf()
        for (queue, task) in zip(queues, tasks) {
            Task {
                let woken = await task.value
                self.waits.withLock { if $0[queue] == task { $0[queue] = nil } }
                first.finish(woken)
            }
        }
        await first.wait(count: tasks.count)
    }

    /// Jobs one heartbeat or finish script carries at most: a worker may hold 10,000, and
    /// one script call should neither hit Lua's limits nor hold Redis for long.
    static let scriptBatch = 1000

    /// `items` grouped by queue, each group cut into slices of at most `scriptBatch`.
    static func scriptBatches<T>(_ items: [T], queue: (T) -> String) -> [(String, ArraySlice<T>)] {
        Dictionary(grouping: items, by: queue).flatMap { name, group in
            stride(from: 0, to: group.count, by: scriptBatch).map { (name, group[$0..<min($0 + scriptBatch, group.count)]) }
        }
    }

    public func heartbeat(_ leases: [Lease], lease: Duration) async throws -> [LeaseStatus] {
        var statuses: [Lease: LeaseStatus] = [:]
        let batches = Self.scriptBatches(leases, queue: \.queue)
        let calls = batches.map { queue, group in
            var arguments = [RedisArgument(Int(lease.milliseconds))]
            for l in group { arguments += [RedisArgument(l.id), RedisArgument(Int(l.token))] }
            return queueCall(queue, arguments)
        }
        for ((_, group), reply) in zip(batches, try await nodes.runMany(QueueScripts.heartbeat, calls: calls, idempotent: true)) {
            if case .error(let message) = reply { throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: "EVALSHA") }
            for (l, value) in zip(group, reply.array ?? []) {
                statuses[l] = value.int == 1 ? .held : value.int == 2 ? .cancelRequested : .lost
            }
        }
        return leases.map { statuses[$0] ?? .lost }
    }

    public func finish(_ completions: [(Lease, Outcome)]) async throws -> [Bool] {
        var accepted: [Lease: Bool] = [:]
        let batches = Self.scriptBatches(completions, queue: { $0.0.queue })
        let calls = batches.map { queue, group in
            var arguments = [RedisArgument(Int(keepSucceeded.milliseconds)), RedisArgument(Int(keepFailed.milliseconds))]
            arguments.reserveCapacity(2 + 5 * group.count)
            for (lease, outcome) in group {
                let (name, data, after): (String, String, Int64) = switch outcome {
                case .succeeded(let result): ("ok", result?.jsonText ?? "", 0)
                case .retry(let ms, let error): ("retry", error, ms)
                case .dead(let error): ("dead", error, 0)
                case .released: ("release", "", 0)
                case .cancelled: ("cancelled", "", 0)
                }
                arguments += [RedisArgument(lease.id), RedisArgument(Int(lease.token)), RedisArgument(name), RedisArgument(data),
                              RedisArgument(Int(after))]
            }
            return queueCall(queue, arguments)
        }
        // Idempotent: a completion sent again is acknowledged once (the finish script keeps its token).
        for ((_, group), reply) in zip(batches, try await nodes.runMany(QueueScripts.finish, calls: calls, durable: true, idempotent: true)) {
            if case .error(let message) = reply { throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: "EVALSHA") }
            for ((lease, _), value) in zip(group, reply.array ?? []) { accepted[lease] = value.int == 1 }
        }
        return completions.map { accepted[$0.0] ?? false }
    }

    public func progress(_ lease: Lease, _ progress: JobProgress) async throws {
        let json = String(decoding: try JSONEncoder().encode(progress), as: UTF8.self)
        try await runQueueScript(QueueScripts.progress, queue: lease.queue, [RedisArgument(lease.id), RedisArgument(Int(lease.token)), RedisArgument(json)])
    }


    public func rescue(queue: String) async throws -> (requeued: Int, dead: Int) {
        let reply = try await runQueueScript(QueueScripts.rescue, queue: queue, [
            1000, RedisArgument(Int(keepFailed.milliseconds)), RedisArgument(Int(keepSucceeded.milliseconds)),
            RedisArgument(Int(rescueEvery.milliseconds)),
        ])
        let values = reply.array ?? []
        return (values.first?.int ?? 0, values.dropFirst().first?.int ?? 0)
    }
}

/// Resumes one waiter when the first of `count` finishes with `true`, or when all have.
final class FirstOf: Sendable {
    private struct State {
        var finished = 0
        var woken = false
        var expected: Int?
        var continuation: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func finish(_ woken: Bool) {
        let resume = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.finished += 1
            if woken { s.woken = true }
            guard s.woken || s.finished == s.expected, let c = s.continuation else { return nil }
            s.continuation = nil
            return c
        }
        resume?.resume()
    }

    func wait(count: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                s.expected = count
                if s.woken || s.finished >= count { return true }
                s.continuation = c
                return false
            }
            if now { c.resume() }
        }
    }
}
