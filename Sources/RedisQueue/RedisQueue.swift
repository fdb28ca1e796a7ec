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
    private let connections: [RedisConnection]
    private let waiter: RedisConnection
    private let next = Atomic<Int>(0)
    /// How long finished jobs are kept (their hashes expire, their ids are trimmed).
    public let keepSucceeded: Duration
    public let keepFailed: Duration
    /// How long a unique key holds at most if its job never ends.
    public let uniqueTTL: Duration

    public init(configuration: RedisConfiguration, logger: Logger, connections: Int = 3,
                keepSucceeded: Duration = .seconds(24 * 3600), keepFailed: Duration = .seconds(7 * 24 * 3600),
                uniqueTTL: Duration = .seconds(24 * 3600)) {
        self.configuration = configuration
        self.logger = logger
        self.keepSucceeded = keepSucceeded
        self.keepFailed = keepFailed
        self.uniqueTTL = uniqueTTL
        self.connections = (0..<max(1, connections)).map { _ in RedisConnection(configuration: configuration, logger: logger) }
        waiter = RedisConnection(configuration: configuration, logger: logger)
    }

    /// A connection for one call: round robin, so concurrent calls use different ones.
    var connection: RedisConnection {
        connections[next.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count]
    }

    /// Connects, and refuses a Redis that could evict queue keys under memory pressure.
    public func checkServer() async throws {
        let reply = try await connection.send("CONFIG", "GET", "maxmemory-policy")
        guard let policy = reply.array?.last?.string else { return }
        if policy != "noeviction" {
            throw RedisError(
                code: .server,
                message: "maxmemory-policy is '\(policy)': under memory pressure Redis would evict queue keys and lose jobs. Set 'maxmemory-policy noeviction' (CONFIG SET maxmemory-policy noeviction, and in redis.conf)",
                endpoint: configuration.endpoint, command: "CONFIG")
        }
    }

    /// Whether Redis answers PING (for readiness probes).
    public func ping() async throws -> Bool {
        try await connection.send("PING").string == "PONG"
    }

    // MARK: - JobQueueDriver

    public func push(_ envelope: JobEnvelope) async throws -> PushResult {
        try await pushMany([envelope])[0]
    }

    /// Pushes many jobs in one round trip (pipelined scripts).
    public func pushMany(_ envelopes: [JobEnvelope]) async throws -> [PushResult] {
        var commands: [RedisCommand] = []
        var queues = Set<String>()
        for envelope in envelopes {
            try envelope.validate()
            queues.insert(envelope.queue)
            let keys = RedisQueueKeys(queue: envelope.queue)
            let runAt = envelope.runAt.map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
            commands.append(evalsha(QueueScripts.push, [
                RedisArgument(keys.prefix), RedisArgument(envelope.id), RedisArgument(envelope.encoded()),
                RedisArgument(envelope.priority), RedisArgument(Int(runAt)), RedisArgument(envelope.uniqueKey ?? ""),
                RedisArgument(Int(uniqueTTL.milliseconds)), RedisArgument(envelope.maxAttempts),
            ]))
        }
        let conn = connection
        try await conn.send(RedisCommand(["SADD", RedisArgument(RedisQueueKeys.queues)] + queues.sorted().map { RedisArgument($0) }))
        let replies = try await pipelineScripts(conn, [QueueScripts.push], commands)
        return try replies.map { reply in
            guard let parts = reply.array, parts.count == 2, let id = parts[1].string else {
                throw RedisError(code: .protocolViolation, message: "push script returned \(reply)", endpoint: configuration.endpoint)
            }
            return parts[0].int == 1 ? .queued(id: id) : .merged(existingID: id)
        }
    }

    public func fetch(queue: String, max: Int, worker: String, lease: Duration) async throws -> FetchResult {
        let keys = RedisQueueKeys(queue: queue)
        let reply = try await connection.run(QueueScripts.fetch, arguments: [
            RedisArgument(keys.prefix), RedisArgument(max), RedisArgument(worker), RedisArgument(Int(lease.milliseconds)),
        ])
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
        let keys = queues.map { RedisArgument(RedisQueueKeys(queue: $0).wake) }
        try await waiter.blocking(RedisCommand(["BLPOP"] + keys + [RedisArgument(seconds)]), timeout: timeout)
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
        for (queue, group) in Self.scriptBatches(leases, queue: \.queue) {
            var arguments = [RedisArgument(RedisQueueKeys(queue: queue).prefix), RedisArgument(Int(lease.milliseconds))]
            for l in group { arguments += [RedisArgument(l.id), RedisArgument(Int(l.token))] }
            let reply = try await connection.run(QueueScripts.heartbeat, arguments: arguments)
            for (l, value) in zip(group, reply.array ?? []) {
                statuses[l] = value.int == 1 ? .held : value.int == 2 ? .cancelRequested : .lost
            }
        }
        return leases.map { statuses[$0] ?? .lost }
    }

    public func finish(_ completions: [(Lease, Outcome)]) async throws -> [Bool] {
        var accepted: [Lease: Bool] = [:]
        for (queue, group) in Self.scriptBatches(completions, queue: { $0.0.queue }) {
            var arguments = [RedisArgument(RedisQueueKeys(queue: queue).prefix), RedisArgument(Int(keepSucceeded.milliseconds)),
                             RedisArgument(Int(keepFailed.milliseconds))]
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
            let reply = try await connection.run(QueueScripts.finish, arguments: arguments)
            for ((lease, _), value) in zip(group, reply.array ?? []) { accepted[lease] = value.int == 1 }
        }
        return completions.map { accepted[$0.0] ?? false }
    }

    public func progress(_ lease: Lease, _ progress: JobProgress) async throws {
        let json = String(decoding: try JSONEncoder().encode(progress), as: UTF8.self)
        try await connection.run(QueueScripts.progress, arguments: [
            RedisArgument(RedisQueueKeys(queue: lease.queue).prefix), RedisArgument(lease.id), RedisArgument(Int(lease.token)), RedisArgument(json),
        ])
    }

    public func rescue(queue: String) async throws -> (requeued: Int, dead: Int) {
        let reply = try await connection.run(QueueScripts.rescue, arguments: [
            RedisArgument(RedisQueueKeys(queue: queue).prefix), 1000, RedisArgument(Int(keepFailed.milliseconds)),
            RedisArgument(Int(keepSucceeded.milliseconds)),
        ])
        let values = reply.array ?? []
        return (values.first?.int ?? 0, values.dropFirst().first?.int ?? 0)
    }

    // MARK: - Scripts in pipelines

    func evalsha(_ script: RedisScript, _ arguments: [RedisArgument]) -> RedisCommand {
        RedisCommand(["EVALSHA", RedisArgument(script.sha1), 0] + arguments)
    }

    /// Sends pipelined EVALSHAs; if the server lacks a script, loads the scripts and sends
    /// the ones that failed again.
    func pipelineScripts(_ conn: RedisConnection, _ scripts: [RedisScript], _ commands: [RedisCommand]) async throws -> [RedisValue] {
        var replies = try await conn.pipeline(commands)
        // Bounded: the cache may be flushed again between the load and the resend.
        for _ in 0..<3 {
            let retry = replies.indices.filter { if case .error(let m) = replies[$0] { return m.hasPrefix("NOSCRIPT") }; return false }
            if retry.isEmpty { break }
            for script in scripts { try await conn.send("SCRIPT", "LOAD", RedisArgument(script.source)) }
            let again = try await conn.pipeline(retry.map { commands[$0] })
            for (i, reply) in zip(retry, again) { replies[i] = reply }
        }
        for reply in replies {
            if case .error(let message) = reply {
                throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: "EVALSHA")
            }
        }
        return replies
    }
}

