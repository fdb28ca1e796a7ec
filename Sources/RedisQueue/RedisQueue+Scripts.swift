import RedisClient

/// The Lua scripts of the Redis queue, one per state transition. Each runs atomically
/// in Redis, takes the time from Redis (`TIME`, one clock for every worker), and checks
/// the fencing token wherever a lease is involved. Versioned by name: a change of
/// semantics gets a new script, so old and new workers never mix meanings.
enum QueueScripts {
    /// Shared helpers, prepended to every script.
    static let prelude = """
        -- Milliseconds with a microsecond fraction, from Redis' clock.
        local function now_ms()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
        end
        -- Higher priority first; FIFO inside a priority (ms since 2025-01-01).
        local function pending_score(priority, at)
          return (9 - tonumber(priority)) * 2199023255552 + (at - 1735689600000)
        end
        local function wake(p)
          if redis.call('LLEN', p .. 'wake') < 64 then redis.call('RPUSH', p .. 'wake', '1') end
        end
        local function release_unique(p, jk, id)
          local u = redis.call('HGET', jk, 'unique')
          if u and u ~= '' then
            local uk = p .. 'unique:' .. u
            if redis.call('GET', uk) == id then redis.call('DEL', uk) end
          end
        end
        local function finish_ttl(jk, keep_ms)
          if tonumber(keep_ms) > 0 then redis.call('PEXPIRE', jk, keep_ms) end
        end
        -- One command per at most `step` values: unpack() of more than Lua's C stack
        -- (about 8,000 values) fails, whatever the batch the caller sent.
        local function call_chunked(cmd, key, values, step)
          for i = 1, #values, step do
            redis.call(cmd, key, unpack(values, i, math.min(i + step - 1, #values)))
          end
        end
        -- A job fired by beat records how it ended on its schedule entry, so the entry's
        -- last success outlives the job's hash (which expires).
        local function record_beat_outcome(p, jk, outcome, now)
          local entry = redis.call('HGET', jk, 'beat_entry')
          if not entry or entry == '' then return end
          local bk = p .. 'beat:' .. entry
          redis.call('HSET', bk, 'outcome', outcome, 'outcome_at', now, 'outcome_job', string.sub(jk, #p + 5))
          if outcome == 'succeeded' then redis.call('HSET', bk, 'success', now) end
        end
        -- Queues a job unless its id or unique key is taken: {1, id} or {0, holder}.
        local function push_job(p, id, envelope, priority, run_at, unique, unique_ttl, max_attempts)
          local jk = p .. 'job:' .. id
          if redis.call('EXISTS', jk) == 1 then return {0, id} end
          if unique ~= '' then
            local holder = redis.call('GET', p .. 'unique:' .. unique)
            if holder then return {0, holder} end
            redis.call('SET', p .. 'unique:' .. unique, id, 'PX', unique_ttl)
          end
          local now = now_ms()
          run_at = tonumber(run_at)
          redis.call('HSET', jk, 'envelope', envelope, 'priority', priority, 'max', max_attempts, 'attempt', 0,
            'token', 0, 'unique', unique, 'enqueued', now)
          if run_at > 0 then redis.call('HSET', jk, 'run_at', run_at) end
          if run_at > now then
            redis.call('HSET', jk, 'state', 'scheduled')
            redis.call('ZADD', p .. 'scheduled', run_at, id)
          else
            redis.call('HSET', jk, 'state', 'pending')
            redis.call('ZADD', p .. 'pending', pending_score(priority, now), id)
            wake(p)
          end
          return {1, id}
        end

        """

    /// ARGV: prefix, id, envelope, priority, runAtMs (0 = now), uniqueKey ('' = none),
    /// uniqueTTLms, maxAttempts. → {1, id} queued, {0, existingID} merged.
    static let push = RedisScript(prelude + """
        -- dbq push v3
        return push_job(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
        """)

    /// ARGV: prefix, entry, slotMs, skipIfRunning (1/0), id, envelope, priority, maxAttempts.
    /// Fires one schedule slot at most once: refused if the entry's cursor is already at
    /// or past the slot; with skipIfRunning, the slot is passed over (cursor moved, nothing
    /// queued) while the entry's previous job is queued or running.
    /// → {1, id} fired, {0, 'done'} already handled, {2, previousID} skipped for overlap.
    static let fireSlot = RedisScript(prelude + """
        -- dbq beat fire v2
        local p, entry, slot = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local bk = p .. 'beat:' .. entry
        local last = tonumber(redis.call('HGET', bk, 'cursor') or '-1')
        if slot <= last then return {0, 'done'} end
        local previous = redis.call('HGET', bk, 'job')
        if previous then
          local f = redis.call('HMGET', p .. 'job:' .. previous, 'state', 'finished')
          if f[1] == 'succeeded' then redis.call('HSET', bk, 'success', f[2]) end
        end
        if ARGV[4] == '1' and previous then
          local state = redis.call('HGET', p .. 'job:' .. previous, 'state')
          if state == 'pending' or state == 'scheduled' or state == 'running' then
            redis.call('HSET', bk, 'cursor', slot)
            redis.call('HINCRBY', bk, 'overlap_skipped', 1)
            return {2, previous}
          end
        end
        local pushed = push_job(p, ARGV[5], ARGV[6], ARGV[7], 0, '', 0, ARGV[8])
        redis.call('HSET', p .. 'job:' .. ARGV[5], 'beat_slot', slot, 'beat_entry', entry)
        redis.call('HSET', bk, 'cursor', slot, 'job', ARGV[5], 'slot', slot, 'fired_at', now_ms())
        return {1, ARGV[5]}
        """)

    /// ARGV: prefix, entry, cursorMs. Moves an entry's cursor forward (slots dropped by
    /// the catch-up policy, or the start of a new entry); never backwards.
    static let advanceCursor = RedisScript(prelude + """
        -- dbq beat advance v1
        local bk = ARGV[1] .. 'beat:' .. ARGV[2]
        local last = tonumber(redis.call('HGET', bk, 'cursor') or '-1')
        redis.call('HSETNX', bk, 'since', ARGV[3])
        if tonumber(ARGV[3]) > last then redis.call('HSET', bk, 'cursor', ARGV[3]) return 1 end
        return 0
        """)

    /// KEYS[1] lock; ARGV: token, ttlMs. Takes the lock if free, renews it if held by
    /// `token`. → 1 leading, 0 not.
    static let lead = RedisScript("""
        -- dbq beat lead v1
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
        if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
        return 0
        """)

    /// KEYS[1] lock; ARGV: token. Releases the lock only if `token` holds it. → 1 released, 0 not.
    static let resign = RedisScript("""
        -- dbq beat resign v1
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    /// ARGV: prefix, max, worker, leaseMs. Promotes due scheduled jobs, then leases up
    /// to max pending jobs. → {{id, token, attempt, envelope}…, msUntilNextScheduled or -1}
    static let fetch = RedisScript(prelude + """
        -- dbq fetch v3
        local p, max, worker, lease = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
        local now = now_ms()
        local due = redis.call('ZRANGEBYSCORE', p .. 'scheduled', '-inf', now, 'LIMIT', 0, 1000)
        for _, id in ipairs(due) do
          local jk = p .. 'job:' .. id
          redis.call('ZREM', p .. 'scheduled', id)
          local priority = redis.call('HGET', jk, 'priority')
          if priority then
            redis.call('HSET', jk, 'state', 'pending')
            redis.call('ZADD', p .. 'pending', pending_score(priority, now), id)
          end
        end
        local out = {}
        local popped = redis.call('ZPOPMIN', p .. 'pending', max)
        local n = #popped / 2
        if n > 0 then
          -- One fence increment and one ZADD for the batch: tokens are base+1 … base+n.
          local base = redis.call('INCRBY', p .. 'fence', n) - n
          local deadline = now + lease
          local running = {}
          for i = 1, n do
            local id = popped[2 * i - 1]
            local jk = p .. 'job:' .. id
            local f = redis.call('HMGET', jk, 'envelope', 'attempt')
            if f[1] then
              local attempt = tonumber(f[2] or 0) + 1
              local token = base + i
              redis.call('HSET', jk, 'state', 'running', 'attempt', attempt, 'token', token, 'worker', worker,
                'lease', deadline, 'started', now)
              running[#running + 1] = deadline
              running[#running + 1] = id
              out[#out + 1] = {id, token, attempt, f[1]}
            end
          end
          call_chunked('ZADD', p .. 'running', running, 2000)
        end
        local nxt = redis.call('ZRANGE', p .. 'scheduled', 0, 0, 'WITHSCORES')
        local wait = -1
        if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now) end
        return {out, wait}
        """)

    /// ARGV: prefix, leaseMs, then id, token pairs. → per job 1 held, 0 lost, 2 cancel requested.
    static let heartbeat = RedisScript(prelude + """
        -- dbq heartbeat v1
        local p, lease = ARGV[1], tonumber(ARGV[2])
        local now = now_ms()
        local out = {}
        for i = 3, #ARGV, 2 do
          local id, token = ARGV[i], ARGV[i + 1]
          local jk = p .. 'job:' .. id
          local fields = redis.call('HMGET', jk, 'state', 'token', 'cancel')
          if fields[1] == 'running' and fields[2] == token then
            redis.call('HSET', jk, 'lease', now + lease)
            redis.call('ZADD', p .. 'running', now + lease, id)
            if fields[3] == '1' then out[#out + 1] = 2 else out[#out + 1] = 1 end
          else
            out[#out + 1] = 0
          end
        end
        return out
        """)

    /// ARGV: prefix, keepSucceededMs, keepFailedMs, then groups of 5: id, token, outcome
    /// (ok, retry, dead, release, cancelled), data (result or error), retryAfterMs.
    /// → per job 1 accepted, 0 refused (stale token or no longer running).
    static let finish = RedisScript(prelude + """
        -- dbq finish v4
        local p, keep_ok, keep_failed = ARGV[1], ARGV[2], ARGV[3]
        local now = now_ms()
        local out = {}
        -- Succeeded jobs leave `running` and join `succeeded` in one call each per batch.
        local finished, succeeded = {}, {}
        for i = 4, #ARGV, 5 do
          local id, token, outcome, data, after = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
          local jk = p .. 'job:' .. id
          local fields = redis.call('HMGET', jk, 'state', 'token', 'priority', 'unique')
          if fields[1] == 'running' and fields[2] == token then
            finished[#finished + 1] = id
            local u = fields[4]
            local function free_unique()
              if u and u ~= '' and redis.call('GET', p .. 'unique:' .. u) == id then redis.call('DEL', p .. 'unique:' .. u) end
            end
            if outcome == 'ok' then
              redis.call('HSET', jk, 'state', 'succeeded', 'result', data, 'finished', now, 'token', 0, 'lease', 0, 'error', '')
              succeeded[#succeeded + 1] = now
              succeeded[#succeeded + 1] = id
              free_unique()
              finish_ttl(jk, keep_ok)
              record_beat_outcome(p, jk, 'succeeded', now)
            elseif outcome == 'retry' then
              redis.call('HSET', jk, 'state', 'scheduled', 'error', data, 'run_at', now + after, 'token', 0, 'lease', 0)
              redis.call('ZADD', p .. 'scheduled', now + after, id)
            elseif outcome == 'dead' then
              redis.call('HSET', jk, 'state', 'dead', 'error', data, 'finished', now, 'token', 0, 'lease', 0)
              redis.call('ZADD', p .. 'dead', now, id)
              free_unique()
              finish_ttl(jk, keep_failed)
              record_beat_outcome(p, jk, 'dead', now)
            elseif outcome == 'release' then
              redis.call('HINCRBY', jk, 'attempt', -1)
              redis.call('HSET', jk, 'state', 'pending', 'token', 0, 'lease', 0)
              redis.call('ZADD', p .. 'pending', pending_score(fields[3], now), id)
              wake(p)
            else
              redis.call('HSET', jk, 'state', 'cancelled', 'finished', now, 'token', 0, 'lease', 0)
              redis.call('ZADD', p .. 'cancelled', now, id)
              free_unique()
              finish_ttl(jk, keep_failed)
              record_beat_outcome(p, jk, 'cancelled', now)
            end
            out[#out + 1] = 1
          else
            out[#out + 1] = 0
          end
        end
        call_chunked('ZREM', p .. 'running', finished, 2000)
        call_chunked('ZADD', p .. 'succeeded', succeeded, 2000)
        return out
        """)

    /// ARGV: prefix, id, token, progress JSON. Stored only under a held lease.
    static let progress = RedisScript(prelude + """
        -- dbq progress v1
        local jk = ARGV[1] .. 'job:' .. ARGV[2]
        local fields = redis.call('HMGET', jk, 'state', 'token')
        if fields[1] == 'running' and fields[2] == ARGV[3] then
          redis.call('HSET', jk, 'progress', ARGV[4])
          return 1
        end
        return 0
        """)

    /// ARGV: prefix, limit, keepFailedMs, keepSucceededMs. Jobs whose lease lapsed go back to pending
    /// (their token is voided, so the lost worker can no longer finish them), to dead past
    /// max attempts, or to cancelled when a cancel was requested. → {requeued, dead, cancelled}
    static let rescue = RedisScript(prelude + """
        -- dbq rescue v2
        local p, limit, keep_failed, keep_ok = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
        local now = now_ms()
        -- Finished jobs' hashes expire; forget their ids with them.
        if keep_ok > 0 then redis.call('ZREMRANGEBYSCORE', p .. 'succeeded', '-inf', now - keep_ok) end
        if tonumber(keep_failed) > 0 then
          redis.call('ZREMRANGEBYSCORE', p .. 'dead', '-inf', now - tonumber(keep_failed))
          redis.call('ZREMRANGEBYSCORE', p .. 'cancelled', '-inf', now - tonumber(keep_failed))
        end
        local lapsed = redis.call('ZRANGEBYSCORE', p .. 'running', '-inf', now, 'LIMIT', 0, limit)
        -- Ends a lapsed job for good: its state, its set, its unique key, its expiry, its beat entry.
        local function settle(p, jk, id, state, now, keep)
          redis.call('HSET', jk, 'state', state, 'finished', now)
          redis.call('ZADD', p .. state, now, id)
          release_unique(p, jk, id)
          finish_ttl(jk, keep)
          record_beat_outcome(p, jk, state, now)
        end
        local requeued, dead, cancelled = 0, 0, 0
        for _, id in ipairs(lapsed) do
          local jk = p .. 'job:' .. id
          redis.call('ZREM', p .. 'running', id)
          local f = redis.call('HMGET', jk, 'state', 'attempt', 'max', 'worker', 'priority', 'cancel')
          if f[1] == 'running' then
            local reason = 'lease lapsed on attempt ' .. f[2] .. ' (worker ' .. (f[4] or '?') .. ' stopped renewing it)'
            redis.call('HSET', jk, 'token', 0, 'lease', 0, 'error', reason)
            if f[6] == '1' then
              -- Its cancellation was asked for: a job someone cancelled never runs again.
              settle(p, jk, id, 'cancelled', now, keep_failed)
              cancelled = cancelled + 1
            elseif tonumber(f[2]) >= tonumber(f[3]) then
              settle(p, jk, id, 'dead', now, keep_failed)
              dead = dead + 1
            else
              redis.call('HSET', jk, 'state', 'pending')
              redis.call('ZADD', p .. 'pending', pending_score(f[5] or 5, now), id)
              wake(p)
              requeued = requeued + 1
            end
          end
        end
        return {requeued, dead, cancelled}
        """)

    /// ARGV: prefix, id, keepFailedMs. → the state after: cancelled at once if waiting;
    /// 'running' with a cancel request (honoured at the next heartbeat); else unchanged.
    static let cancel = RedisScript(prelude + """
        -- dbq cancel v1
        local p, id = ARGV[1], ARGV[2]
        local jk = p .. 'job:' .. id
        local state = redis.call('HGET', jk, 'state')
        if not state then return '' end
        if state == 'pending' or state == 'scheduled' then
          redis.call('ZREM', p .. state, id)
          redis.call('HSET', jk, 'state', 'cancelled', 'finished', now_ms())
          redis.call('ZADD', p .. 'cancelled', now_ms(), id)
          release_unique(p, jk, id)
          finish_ttl(jk, ARGV[3])
          return 'cancelled'
        elseif state == 'running' then
          redis.call('HSET', jk, 'cancel', '1')
        end
        return state
        """)

    /// ARGV: prefix, id. Dead or cancelled (or succeeded) → pending again with fresh attempts.
    static let retry = RedisScript(prelude + """
        -- dbq retry v1
        local p, id = ARGV[1], ARGV[2]
        local jk = p .. 'job:' .. id
        local f = redis.call('HMGET', jk, 'state', 'priority')
        if not f[1] then return '' end
        if f[1] ~= 'dead' and f[1] ~= 'cancelled' and f[1] ~= 'succeeded' then return f[1] end
        redis.call('ZREM', p .. f[1], id)
        redis.call('PERSIST', jk)
        redis.call('HSET', jk, 'state', 'pending', 'attempt', 0, 'token', 0)
        redis.call('HDEL', jk, 'error', 'result', 'finished', 'cancel', 'progress')
        redis.call('ZADD', p .. 'pending', pending_score(f[2], now_ms()), id)
        wake(p)
        return 'pending'
        """)

    /// ARGV: prefix, state, olderThanMs (0 = all). Removes finished jobs of one state.
    static let purge = RedisScript(prelude + """
        -- dbq purge v1
        local p, state = ARGV[1], ARGV[2]
        local cutoff = now_ms() - tonumber(ARGV[3])
        if tonumber(ARGV[3]) == 0 then cutoff = '+inf' end
        local ids = redis.call('ZRANGEBYSCORE', p .. state, '-inf', cutoff, 'LIMIT', 0, 10000)
        for _, id in ipairs(ids) do
          redis.call('DEL', p .. 'job:' .. id)
          redis.call('ZREM', p .. state, id)
        end
        return #ids
        """)
}
