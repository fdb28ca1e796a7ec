import Foundation
import RedisClient

/// Alert state shared by every dbq process of a fleet, so each condition is told once per
/// receiver and repeat interval however many processes see it, and resolved once.
///   dbq:alerts:firing              hash: alert key → the alert as JSON (since when)
///   dbq:alerts:gate:<receiver>:<key>   set NX with the repeat interval: who sends now
///   dbq:alerts:told:<receiver>:<key>   the receiver was told (so it hears the resolution)
/// Every command names one key, so the same holds on a Redis Cluster.
extension RedisQueue {
    static let alertsFiring = "dbq:alerts:firing"

    /// Records the alert as firing (keeping the first record's time) and returns the
    /// receivers this process must tell now: those whose repeat interval has passed since
    /// any process last told them.
    public func alertRaise(key: String, record: String, receivers: [(name: String, repeatMilliseconds: Int64)]) async throws -> (record: String, tell: [String]) {
        let firing = Self.alertsFiring
        _ = try await nodes.send(key: firing, "HSETNX", RedisArgument(firing), RedisArgument(key), RedisArgument(record))
        let stored = try await nodes.send(key: firing, idempotent: true, "HGET", RedisArgument(firing), RedisArgument(key)).string ?? record
        var tell: [String] = []
        for receiver in receivers {
            let gate = "dbq:alerts:gate:\(receiver.name):\(key)"
            let won = try await nodes.send(key: gate, "SET", RedisArgument(gate), "1", "NX", "PX", RedisArgument(String(receiver.repeatMilliseconds)))
            guard won.string == "OK" else { continue }
            let told = "dbq:alerts:told:\(receiver.name):\(key)"
            _ = try await nodes.send(key: told, "SET", RedisArgument(told), "1")
            tell.append(receiver.name)
        }
        return (stored, tell)
    }

    /// Clears a firing alert. Returns its record and the receivers that had been told, for
    /// this process to tell of the resolution; nothing when another process resolved it
    /// first or it was not firing.
    public func alertResolve(key: String, receivers: [String]) async throws -> (record: String, tell: [String])? {
        let firing = Self.alertsFiring
        guard let record = try await nodes.send(key: firing, idempotent: true, "HGET", RedisArgument(firing), RedisArgument(key)).string else { return nil }
        guard try await nodes.send(key: firing, "HDEL", RedisArgument(firing), RedisArgument(key)).int == 1 else { return nil }
        var tell: [String] = []
        for name in receivers {
            let told = "dbq:alerts:told:\(name):\(key)", gate = "dbq:alerts:gate:\(name):\(key)"
            if try await nodes.send(key: told, "DEL", RedisArgument(told)).int == 1 { tell.append(name) }
            _ = try await nodes.send(key: gate, "DEL", RedisArgument(gate))
        }
        return (record, tell)
    }

    /// Every firing alert: key → record.
    public func alertsFiring() async throws -> [String: String] {
        let reply = try await nodes.send(key: Self.alertsFiring, idempotent: true, "HGETALL", RedisArgument(Self.alertsFiring)).array ?? []
        var out: [String: String] = [:]
        for index in stride(from: 0, to: reply.count - 1, by: 2) {
            if let key = reply[index].string, let value = reply[index + 1].string { out[key] = value }
        }
        return out
    }

    /// Whether any job of `kind` is dead in `queue` (newest `scan` looked at).
    public func hasDead(queue: String, kind: String, scan: Int = 500) async throws -> Bool {
        try await list(queue: queue, state: .dead, limit: scan).contains { $0.kind == kind }
    }
}
