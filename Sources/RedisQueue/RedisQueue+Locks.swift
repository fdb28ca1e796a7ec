import DBQSupport
import Queue
import RedisClient

/// Reader-writer locks on Redis: the shared holders are a sorted set scored by expiry,
/// the exclusive holder a string with a TTL; both judged by Redis' clock, so a holder
/// that dies lapses after its TTL whatever the workers' clocks say.
extension RedisQueue: ResourceLocks {
    public func tryAcquire(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool {
        let keys = RedisQueueKeys.lock(name)
        let reply = try await nodes.run(
            QueueScripts.lockAcquire, keys: [RedisArgument(keys.shared), RedisArgument(keys.exclusive)],
            arguments: [RedisArgument(mode.rawValue), RedisArgument(owner), RedisArgument(String(ttl.milliseconds))], idempotent: true)
        return reply.int == 1
    }

    public func renew(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool {
        let keys = RedisQueueKeys.lock(name)
        let reply = try await nodes.run(
            QueueScripts.lockRenew, keys: [RedisArgument(keys.shared), RedisArgument(keys.exclusive)],
            arguments: [RedisArgument(mode.rawValue), RedisArgument(owner), RedisArgument(String(ttl.milliseconds))], idempotent: true)
        return reply.int == 1
    }

    public func release(_ name: String, mode: LockMode, owner: String) async throws {
        let keys = RedisQueueKeys.lock(name)
        _ = try await nodes.run(
            QueueScripts.lockRelease, keys: [RedisArgument(keys.shared), RedisArgument(keys.exclusive)],
            arguments: [RedisArgument(mode.rawValue), RedisArgument(owner)], idempotent: true)
    }
}

extension QueueScripts {
    /// KEYS: shared set, exclusive key. ARGV: mode, owner, ttlMs. → 1 taken, 0 busy.
    static let lockAcquire = RedisScript(prelude + """
        -- dbq lock acquire v1
        local mode, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local now = now_ms()
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        local x = redis.call('GET', KEYS[2])
        if x and x ~= owner then return 0 end
        if mode == 'shared' then
          redis.call('ZADD', KEYS[1], now + ttl, owner)
          redis.call('PEXPIRE', KEYS[1], ttl)
          return 1
        end
        if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
        redis.call('SET', KEYS[2], owner, 'PX', ttl)
        return 1
        """)

    static let lockRenew = RedisScript(prelude + """
        -- dbq lock renew v1
        local mode, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local now = now_ms()
        if mode == 'shared' then
          local until_ = redis.call('ZSCORE', KEYS[1], owner)
          if not until_ or tonumber(until_) <= now then return 0 end
          redis.call('ZADD', KEYS[1], now + ttl, owner)
          redis.call('PEXPIRE', KEYS[1], ttl)
          return 1
        end
        if redis.call('GET', KEYS[2]) ~= owner then return 0 end
        redis.call('PEXPIRE', KEYS[2], ttl)
        return 1
        """)

    static let lockRelease = RedisScript("""
        -- dbq lock release v1
        if ARGV[1] == 'shared' then return redis.call('ZREM', KEYS[1], ARGV[2]) end
        if redis.call('GET', KEYS[2]) == ARGV[2] then return redis.call('DEL', KEYS[2]) end
        return 0
        """)
}
