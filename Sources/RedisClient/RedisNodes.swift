import DBQSupport
import Logging
import Synchronization

/// Sends commands to Redis: to the one server of a `redis://` URL, or, for a
/// `redis+cluster://` URL, to the master serving the command's slot.
///
/// Cluster routing: the slot map comes from `CLUSTER SLOTS` (any reachable node, seeds
/// first), is corrected slot by slot on `MOVED` and refreshed after a failover; `ASK`
/// sends the command once more to the importing node after `ASKING`; `TRYAGAIN` and
/// `CLUSTERDOWN` are waited out with backoff. A command is sent again elsewhere only when
/// it certainly did not run (a redirect, or a connection that could not be made); a
/// connection broken after sending fails the call, as on a single Redis, and the caller
/// decides. Each node has its own small pool of connections, plus one connection per
/// blocking wait.
public final class RedisNodes: Sendable {
    public let configuration: RedisConfiguration
    let logger: Logger
    let connectionsPerNode: Int

    private struct Pool {
        var connections: [RedisConnection]
        var next = 0
        var blocking: [String: RedisConnection] = [:]
    }
    private struct State {
        var map = SlotMap()
        var pools: [String: Pool] = [:]
        var refreshedAt: ContinuousClock.Instant?
        var singleReplicas: (ContinuousClock.Instant, Int)?
        var unreplicated = 0
    }
    private let state = Mutex(State())

    /// How long a failover may take before calls give up (a replica is promoted after the
    /// cluster's node timeout, typically a few seconds).
    public static let failoverPatience: Duration = .seconds(20)

    public init(configuration: RedisConfiguration, logger: Logger, connectionsPerNode: Int = 3) {
        self.configuration = configuration
        self.logger = logger
        self.connectionsPerNode = max(1, connectionsPerNode)
    }

    public var isCluster: Bool { configuration.isCluster }

    // MARK: - Commands

    /// One command; `key` chooses the node (ignored on a single Redis). Error replies are
    /// thrown as `.server`.
    @discardableResult
    public func send(_ command: RedisCommand, key: String?, idempotent: Bool = false) async throws -> RedisValue {
        let reply = try await route(key: key, idempotent: idempotent) { connection, asking in
            let replies = try await connection.pipeline(asking ? [RedisCommand("ASKING"), command] : [command])
            return replies[replies.count - 1]
        }
        if case .error(let message) = reply {
            throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: command.name)
        }
        return reply
    }

    @discardableResult
    public func send(key: String?, idempotent: Bool = false, _ name: RedisArgument, _ arguments: RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand([name] + arguments), key: key, idempotent: idempotent)
    }

    /// Commands whose keys share one slot, in one round trip; error replies in place.
    /// On a cluster, a command answered with a redirect (`MOVED`, `ASK`) or `TRYAGAIN` did
    /// not run: it is sent again alone, following the redirect (which also corrects the
    /// slot map), so a pipeline reads and writes where the slot lives now.
    public func pipeline(_ commands: [RedisCommand], key: String?, idempotent: Bool = false) async throws -> [RedisValue] {
        var replies = try await pipelineOnce(commands, key: key, idempotent: idempotent)
        if isCluster {
            for i in replies.indices where Self.isRedirect(replies[i]) {
                replies[i] = try await pipelineOnce([commands[i]], key: key, idempotent: idempotent).first ?? .null
            }
        }
        return replies
    }

    /// A pipeline sent once: `redirectable`, a redirect of the first command is followed
    /// for the whole pipeline (by default only for a pipeline of one command); any other
    /// redirect is left in place.
    private func pipelineOnce(_ commands: [RedisCommand], key: String?, idempotent: Bool = false, redirectable: Bool? = nil) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await route(key: key, redirectable: redirectable ?? (commands.count == 1), idempotent: idempotent) { connection, asking in
            let replies = try await connection.pipeline(asking ? [RedisCommand("ASKING")] + commands : commands)
            return asking ? Array(replies.dropFirst()) : replies
        }
    }

    /// A reply that says the command did not run here: a redirect, `TRYAGAIN` (a slot
    /// split by a migration) or `CLUSTERDOWN`.
    private static func isRedirect(_ reply: RedisValue) -> Bool {
        guard case .error(let m) = reply else { return false }
        return ClusterRedirect(m) != nil || m.hasPrefix("TRYAGAIN") || m.hasPrefix("CLUSTERDOWN")
    }

    /// A script by `EVALSHA`, loaded on `NOSCRIPT`; routed by its first key.
    @discardableResult
    public func run(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument] = [], durable: Bool = false,
                    idempotent: Bool = false) async throws -> RedisValue {
        let replies = try await runMany(script, calls: [(keys, arguments)], durable: durable, idempotent: idempotent)
        if case .error(let message) = replies[0] {
            throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: "EVALSHA")
        }
        return replies[0]
    }

    /// Many calls of one script, pipelined per node; replies in order (error replies in
    /// place). Calls whose node lacks the script are sent again after `SCRIPT LOAD`.
    ///
    /// `durable`: each pipeline ends with `WAIT` for the node's replicas (up to
    /// `durableWait`), so the writes survive a failover once the call returns; on a node
    /// without replicas, or when they do not answer in time, the call returns anyway and
    /// the writes are the master's alone (counted in `unreplicated`).
    ///
    /// `idempotent`: running a call twice does what running it once does, so a call whose
    /// connection broke (it may have run) is sent again, on the node that serves its slot
    /// by then, until the failover patience runs out.
    public func runMany(_ script: RedisScript, calls: [(keys: [RedisArgument], arguments: [RedisArgument])], durable: Bool = false,
                        idempotent: Bool = false) async throws -> [RedisValue] {
        let commands = calls.map { RedisCommand(["EVALSHA", RedisArgument(script.sha1), RedisArgument($0.keys.count)] + $0.keys + $0.arguments) }
        let keys = calls.map { $0.keys.first.map { String(decoding: $0.bytes, as: UTF8.self) } }
        return try await pipelined(commands, keys: keys, script: script, durable: durable, idempotent: idempotent)
    }

    /// How long a durable call waits for replicas.
    public static let durableWait: Duration = .milliseconds(500)

    /// Durable calls whose writes no replica confirmed in time (since start).
    public var unreplicated: Int { state.withLock { $0.unreplicated } }

    /// Commands for any slots, one pipeline per node sent side by side; replies in order.
    public func pipelined(_ commands: [RedisCommand], keys: [String?], script: RedisScript? = nil, durable: Bool = false,
                          idempotent: Bool = false) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        var groups: [Int?: [Int]] = [:]
        for (i, key) in keys.enumerated() { groups[isCluster ? key.map(HashSlot.of) : nil, default: []].append(i) }
        if groups.count == 1 {
            return try await pipelineSlot(commands, key: keys[0], script: script, durable: durable, idempotent: idempotent)
        }
        var replies = [RedisValue](repeating: .null, count: commands.count)
        try await withThrowingTaskGroup(of: ([Int], [RedisValue]).self) { group in
            for (_, indices) in groups {
                let part = indices.map { commands[$0] }
                let key = keys[indices[0]]
                group.addTask { (indices, try await self.pipelineSlot(part, key: key, script: script, durable: durable, idempotent: idempotent)) }
            }
            for try await (indices, part) in group {
                for (i, reply) in zip(indices, part) { replies[i] = reply }
            }
        }
        return replies
    }

    /// The replicas of the node serving `key` (a cluster's map; for a single Redis, its
    /// connected replicas, read at most every 30 s).
    private func replicaCount(for key: String?) async -> Int {
        if isCluster { return state.withLock { s in key.flatMap { s.map.node(for: HashSlot.of($0)) }.flatMap { s.map.replicas[$0] } ?? 0 } }
        if let (at, count) = state.withLock({ $0.singleReplicas }), ContinuousClock.now - at < .seconds(30) { return count }
        let info = (try? await connection(configuration.endpoint).send("INFO", "replication").string) ?? ""
        let count = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_slaves:") }
            .flatMap { Int($0.split(separator: ":")[1]) } ?? 0
        state.withLock { $0.singleReplicas = (ContinuousClock.now, count) }
        return count
    }

    /// A pipeline, ended by `WAIT` for one of the node's replicas when `durable` (see
    /// `runMany`): one acknowledgement is what a failover needs, so a lagging replica
    /// beside a current one costs nothing. A single command with its WAIT follows
    /// redirects as the command alone would (a slot moved or being migrated).
    private func pipelineDurable(_ commands: [RedisCommand], key: String?, durable: Bool, idempotent: Bool = false) async throws -> [RedisValue] {
        let replicas = durable ? await replicaCount(for: key) : 0
        guard replicas > 0 else { return try await pipelineOnce(commands, key: key, idempotent: idempotent) }
        let wait = RedisCommand("WAIT", RedisArgument(1), RedisArgument(Int(Self.durableWait.milliseconds)))
        var replies = try await pipelineOnce(commands + [wait], key: key, idempotent: idempotent, redirectable: commands.count == 1)
        let acknowledged = replies.removeLast().int ?? 0
        if acknowledged < 1 { state.withLock { $0.unreplicated += 1 } }
        return replies
    }

    private func pipelineSlot(_ commands: [RedisCommand], key: String?, script: RedisScript?, durable: Bool = false,
                              idempotent: Bool = false) async throws -> [RedisValue] {
        var replies = try await pipelineDurable(commands, key: key, durable: durable, idempotent: idempotent)
        // The script cache can be flushed between the load and the resend (SCRIPT FLUSH,
        // a restart, a failover): bounded.
        for _ in 0..<3 {
            guard let script else { break }
            let missing = replies.indices.filter { if case .error(let m) = replies[$0] { return m.hasPrefix("NOSCRIPT") }; return false }
            if missing.isEmpty { break }
            let loaded = try await send(RedisCommand("SCRIPT", "LOAD", RedisArgument(script.source)), key: key)
            guard loaded.string == script.sha1 else {
                throw RedisError(code: .protocolViolation, message: "SCRIPT LOAD returned \(loaded), expected \(script.sha1)", command: "SCRIPT")
            }
            let again = try await pipelineDurable(missing.map { commands[$0] }, key: key, durable: durable, idempotent: idempotent)
            for (i, reply) in zip(missing, again) { replies[i] = reply }
        }
        // A slot that moved under part of a pipeline: those commands one by one.
        if isCluster {
            for i in replies.indices {
                if Self.isRedirect(replies[i]) {
                    replies[i] = try await pipelineDurable([commands[i]], key: key, durable: durable, idempotent: idempotent).first ?? .null
                }
            }
        }
        return replies
    }

    /// A command that blocks on the server (`BLPOP`), on a connection of its own per
    /// `waiter` (a blocked connection can serve nothing else).
    @discardableResult
    public func blocking(_ command: RedisCommand, key: String?, waiter: String, timeout: Duration) async throws -> RedisValue {
        let reply = try await route(key: key, redirectable: true, blockingWaiter: waiter) { connection, _ in
            try await connection.blockingReply(command, timeout: timeout)
        }
        if case .error(let message) = reply {
            throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: command.name)
        }
        return reply
    }

    /// Runs `body` on one connection of every master (a single Redis: the one).
    public func eachMaster<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) async throws -> T) async throws -> [T] {
        var endpoints = [configuration.endpoint]
        if isCluster {
            try await refreshIfNeeded(force: state.withLock { $0.map.masters.isEmpty })
            endpoints = state.withLock { $0.map.masters }
        }
        var out: [T] = []
        for endpoint in endpoints { out.append(try await body(connection(endpoint))) }
        return out
    }

    /// The masters' endpoints (one, for a single Redis).
    public func masters() async throws -> [String] {
        guard isCluster else { return [configuration.endpoint] }
        try await refreshIfNeeded(force: state.withLock { $0.map.masters.isEmpty })
        return state.withLock { $0.map.masters }
    }

    /// A pooled connection to the node that serves `key`'s slot as the map knows it (the
    /// one node of a single Redis): for inspection and tests, not for routing commands.
    public func connection(for key: String?) -> RedisConnection { connection(endpoint(for: key)) }

    /// The node that serves `key`'s slot as the map knows it (the one node of a single Redis).
    public func endpoint(for key: String?) -> String {
        isCluster ? (state.withLock { s in key.flatMap { s.map.node(for: HashSlot.of($0)) } } ?? configuration.endpoint) : configuration.endpoint
    }

    /// Points `slot` at `endpoint` in this client's map only, as a map gone stale would
    /// (for tests of redirect handling; the next MOVED corrects it).
    func pretendSlot(_ slot: Int, isAt endpoint: String) {
        state.withLock { $0.map.move(slot, to: endpoint) }
    }

    /// Closes every connection.
    public func close() async {
        let all = state.withLock { s -> [RedisConnection] in
            defer { s.pools = [:] }
            return s.pools.values.flatMap { $0.connections + Array($0.blocking.values) }
        }
        for c in all { await c.close() }
    }

    // MARK: - Routing

    /// Runs `body` on a connection of the node serving `key`'s slot, following redirects
    /// and waiting out failovers (see the type's comment).
    private func route<T>(key: String?, redirectable: Bool = true, blockingWaiter: String? = nil, idempotent: Bool = false,
                          _ body: (RedisConnection, _ asking: Bool) async throws -> T) async throws -> T {
        guard isCluster else {
            return try await body(blockingWaiter.map { blockingConnection(configuration.endpoint, $0) } ?? connection(configuration.endpoint), false)
        }
        let slot = key.map(HashSlot.of) ?? 0
        let deadline = ContinuousClock.now + Self.failoverPatience
        var ask: String?
        var attempt = 0
        while true {
            attempt += 1
            if state.withLock({ $0.map.node(for: slot) == nil }) { try await refreshIfNeeded(force: true) }
            guard let endpoint = ask ?? state.withLock({ $0.map.node(for: slot) }) else {
                throw RedisError(code: .connection, message: "no node of the cluster serves slot \(slot)", endpoint: configuration.endpoint, mayHaveRun: false)
            }
            let connection = blockingWaiter.map { blockingConnection(endpoint, $0) } ?? connection(endpoint)
            let result: T
            do {
                result = try await body(connection, ask != nil)
            } catch let error as RedisError where (!error.mayHaveRun || (idempotent && error.isTransient)) && ContinuousClock.now < deadline {
                // The node is gone (a failover under way): ask the others for the new map.
                logger.debug("Redis node unreachable; refreshing the slot map", metadata: ["redis.endpoint": "\(endpoint)"])
                try? await Task.sleep(for: Backoff(base: .milliseconds(50), cap: .seconds(1)).delay(attempt: attempt - 1))
                try? await refreshIfNeeded(force: true, avoiding: endpoint)
                continue
            } catch let error as RedisError where blockingWaiter != nil && error.isTransient {
                dropBlocking(endpoint, blockingWaiter!)
                throw error
            }
            ask = nil
            guard redirectable, let message = Self.errorMessage(result) else { return result }
            if let redirect = ClusterRedirect(message), attempt < 16 {
                switch redirect {
                case .moved(let movedSlot, let target):
                    state.withLock { $0.map.move(movedSlot, to: target) }
                    Task { try? await self.refreshIfNeeded(force: false) }
                case .ask(_, let target):
                    ask = target
                }
                continue
            }
            if (message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN")) && ContinuousClock.now < deadline {
                try? await Task.sleep(for: Backoff(base: .milliseconds(50), cap: .seconds(1)).delay(attempt: attempt - 1))
                try? await refreshIfNeeded(force: true)
                continue
            }
            return result
        }
    }

    /// The redirect or error a reply asks the router to act on: a command's error, or the
    /// first command's error of a pipeline routed as one (a command and its WAIT).
    private static func errorMessage<T>(_ result: T) -> String? {
        if case .error(let m)? = result as? RedisValue { return m }
        if let replies = result as? [RedisValue], let first = replies.first, case .error(let m) = first { return m }
        return nil
    }

    /// Reads `CLUSTER SLOTS` from a reachable node: at most every 250 ms unless forced.
    private func refreshIfNeeded(force: Bool, avoiding: String? = nil) async throws {
        let (due, candidates) = state.withLock { s -> (Bool, [String]) in
            let now = ContinuousClock.now
            if !force, let at = s.refreshedAt, now - at < .milliseconds(250) { return (false, []) }
            if force, let at = s.refreshedAt, now - at < .milliseconds(20) { return (false, []) }
            s.refreshedAt = now
            var nodes = s.map.masters + configuration.seeds
            nodes.removeAll { $0 == avoiding }
            return (true, nodes.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } } + (avoiding.map { [$0] } ?? []))
        }
        guard due else { return }
        var lastError: (any Error)?
        for endpoint in candidates {
            do {
                let reply = try await connection(endpoint).send("CLUSTER", "SLOTS")
                let map = try SlotMap.parse(reply, answering: endpoint)
                guard !map.masters.isEmpty else { continue }
                state.withLock { $0.map = map }
                return
            } catch {
                lastError = error
            }
        }
        // Every node unreachable: name them all (the last one alone reads as a typo in it).
        if candidates.count > 1, let last = lastError as? RedisError, last.code == .connection, !last.mayHaveRun {
            throw RedisError(code: .connection, message: "no node of the cluster answers; the last: \(last.message)",
                             endpoint: "any of " + candidates.joined(separator: ", "), mayHaveRun: false)
        }
        throw lastError ?? RedisError(code: .connection, message: "no seed node of the cluster answers", endpoint: configuration.endpoint, mayHaveRun: false)
    }

    private func connection(_ endpoint: String) -> RedisConnection {
        state.withLock { s in
            if s.pools[endpoint] == nil {
                let node = configuration.isCluster ? configuration.node(endpoint) : configuration
                s.pools[endpoint] = Pool(connections: (0..<connectionsPerNode).map { _ in RedisConnection(configuration: node, logger: logger) })
            }
            let i = s.pools[endpoint]!.next
            s.pools[endpoint]!.next = (i + 1) % connectionsPerNode
            return s.pools[endpoint]!.connections[i]
        }
    }

    private func blockingConnection(_ endpoint: String, _ waiter: String) -> RedisConnection {
        _ = connection(endpoint)
        return state.withLock { s in
            if let c = s.pools[endpoint]?.blocking[waiter] { return c }
            let node = configuration.isCluster ? configuration.node(endpoint) : configuration
            let c = RedisConnection(configuration: node, logger: logger)
            s.pools[endpoint]?.blocking[waiter] = c
            return c
        }
    }

    private func dropBlocking(_ endpoint: String, _ waiter: String) {
        state.withLock { _ = $0.pools[endpoint]?.blocking.removeValue(forKey: waiter) }
    }
}
