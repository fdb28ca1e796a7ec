import Foundation
import RedisClient

extension RedisQueue {
    /// Jobs finished (succeeded or dead) in each of the last `buckets` windows of
    /// `bucketSeconds`, oldest first, by Redis' clock: read from the finished sets' scores
    /// (their finish times), so nothing is recorded for it and nothing is lost on restart.
    public func finishedCounts(queue: String, buckets: Int, bucketSeconds: Int) async throws -> [Int] {
        let keys = RedisQueueKeys(queue: queue)
        guard let time = try await nodes.send(key: keys.routing, idempotent: true, "TIME").array, let seconds = time.first?.int else { return [] }
        let now = Int64(seconds) * 1000
        let width = Int64(bucketSeconds) * 1000
        var commands: [RedisCommand] = []
        for b in 0..<buckets {
            let from = now - Int64(buckets - b) * width, to = from + width
            for set in [keys.succeeded, keys.dead] {
                commands.append(RedisCommand("ZCOUNT", RedisArgument(set), RedisArgument(String(from)), RedisArgument("(\(to)")))
            }
        }
        let replies = try await nodes.pipeline(commands, key: keys.routing, idempotent: true)
        return stride(from: 0, to: replies.count, by: 2).map { (replies[$0].int ?? 0) + (replies[$0 + 1].int ?? 0) }
    }

    /// Adds one line to the dashboard's action log, or to another log of it (the
    /// sign-ins); the newest 1,000 of each are kept.
    public func appendAudit(_ line: String, to key: String = RedisQueueKeys.audit) async throws {
        _ = try await nodes.pipeline([
            RedisCommand("LPUSH", RedisArgument(key), RedisArgument(line)),
            RedisCommand("LTRIM", RedisArgument(key), 0, 999),
        ], key: key, idempotent: true)
    }

    /// The newest `limit` lines of the dashboard's action log (or of `key`).
    public func audit(limit: Int, of key: String = RedisQueueKeys.audit) async throws -> [String] {
        (try await nodes.send(key: key, idempotent: true, "LRANGE", RedisArgument(key), 0, RedisArgument(limit - 1)).array ?? []).compactMap(\.string)
    }

    /// Counts a failed dashboard sign-in from `address`; the count lapses `window` after
    /// the first failure. Returns the count.
    public func countSignInFailure(address: String, window: Duration) async throws -> Int {
        let key = RedisQueueKeys.signInFailures(address)
        let count = try await nodes.send(key: key, "INCR", RedisArgument(key)).int ?? 0
        if count == 1 { _ = try await nodes.send(key: key, "PEXPIRE", RedisArgument(key), RedisArgument(String(window.components.seconds * 1000))) }
        return count
    }

    public func signInFailures(address: String) async throws -> Int {
        let key = RedisQueueKeys.signInFailures(address)
        return (try await nodes.send(key: key, idempotent: true, "GET", RedisArgument(key)).string).flatMap(Int.init) ?? 0
    }
}
