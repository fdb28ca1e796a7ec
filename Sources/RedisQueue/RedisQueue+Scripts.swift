import RedisClient

/// The Lua scripts of the Redis queue, one per state transition. Each runs atomically
/// in Redis, takes the time from Redis (`TIME`, one clock for every worker), and checks
/// the fencing token wherever a lease is involved. Versioned by name: a change of
/// semantics gets a new script, so old and new workers never mix meanings.
///
/// Keys: every queue script declares the queue's fixed keys (`RedisQueueKeys.scriptKeys`,
/// all under the hash tag `{queue}`), and derives job, unique and beat-entry keys from the
/// prefix in ARGV[1], which carries the same tag: on a Redis Cluster a queue's script runs
/// on the one node that holds the queue's slot, and every key it touches is in that slot.
/// A ninth declared key, never written, keeps every script from running while the slot
/// migrates (`RedisQueueKeys.scriptKeys`).
/// Times are whole milliseconds (formatting fractional numbers cost Redis more than the
/// commands themselves).
enum QueueScripts {
    /// Shared helpers, prepended to every script. KEYS: pending, scheduled, running,
    /// succeeded, dead, cancelled, fence, wake, slot guard.
    static let prelude = """
        local K_PENDING, K_SCHEDULED, K_RUNNING, K_SUCCEEDED, K_DEAD, K_CANCELLED, K_FENCE, K_WAKE =
          KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
        local SET_OF = {pending = KEYS[1], scheduled = KEYS[2], running = KEYS[3], succeeded = KEYS[4], dead = KEYS[5], cancelled = KEYS[6]}
        -- Redis' clock: whole milliseconds (for scores and arithmetic), and the same time
        -- with its microseconds as text (for the stored times: made once per call, so no
        -- job pays for formatting a fraction).
        local function now_ms()
          local t = redis.call('TIME')
          local us = tonumber(t[2])
          local ms = tonumber(t[1]) * 1000 + math.floor(us / 1000)
          return ms, string.format('%d.%03d', ms, us % 1000)
        end
        -- Higher priority first; FIFO inside a priority (ms since 2025-01-01).
        local function pending_score(priority, at)
          return (9 - tonumber(priority)) * 2199023255552 + (at - 1735689600000)
        end
        -- The score as text, formatted once per priority and call.
        local score_texts = {}
        local function pending_score_text(priority, at)
          local text = score_texts[priority]
          if not text then
            text = tostring(pending_score(priority, at))
            score_texts[priority] = text
          end
          return text
        end
        local function wake()
          if redis.call('LLEN', K_WAKE) < 64 then redis.call('RPUSH', K_WAKE, '1') end
        end
        local function release_unique(p, u, id)
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
        local function record_beat_outcome(p, entry, id, outcome, now)
          if not entry or entry == '' then return end
          local bk = p .. 'beat:' .. entry
          redis.call('HSET', bk, 'outcome', outcome, 'outcome_at', now, 'outcome_job', id)
          if outcome == 'succeeded' then redis.call('HSET', bk, 'success', now) end
        end
        -- Queues a job unless its id or unique key is taken: {1, id} or {0, holder}.
        -- Pending jobs' scores are collected in `pending` (ZADD once per batch).
        -- Fields at their default are not written: no attempt (0), no token (0), no
        -- unique key (''); every reader takes a missing one for its default.
        -- A unique key lives as long as its job (released when the job ends, by whoever
        -- ends it); a key whose holder no longer exists (its hash deleted by hand) is free.
        local function push_job(p, id, envelope, priority, run_at, unique, max_attempts, now, now_str, pending)
          local jk = p .. 'job:' .. id
          if redis.call('EXISTS', jk) == 1 then return 0, id end
          if unique ~= '' then
            local uk = p .. 'unique:' .. unique
            local holder = redis.call('GET', uk)
            if holder and redis.call('EXISTS', p .. 'job:' .. holder) == 1 then return 0, holder end
            redis.call('SET', uk, id)
            redis.call('HSET', jk, 'unique', unique)
          end
          run_at = tonumber(run_at)
          if run_at > now then
            redis.call('HSET', jk, 'envelope', envelope, 'priority', priority, 'max', max_attempts,
              'enqueued', now_str, 'run_at', run_at, 'state', 'scheduled')
            redis.call('ZADD', K_SCHEDULED, run_at, id)
          else
            if run_at > 0 then
              redis.call('HSET', jk, 'envelope', envelope, 'priority', priority, 'max', max_attempts,
                'enqueued', now_str, 'run_at', run_at, 'state', 'pending')
            else
              redis.call('HSET', jk, 'envelope', envelope, 'priority', priority, 'max', max_attempts,
                'enqueued', now_str, 'state', 'pending')
            end
            pending[#pending + 1] = pending_score_text(priority, now)
            pending[#pending + 1] = id
          end
          return 1, id
        end

        """

    /// ARGV: prefix, id, envelope, priority, runAtMs (0 = now), uniqueKey ('' = none),
    /// (unused: a unique key lives as long as its job; the slot keeps the layout other
    /// programs send), maxAttempts. → {1, id} queued, {0, existingID} merged. (For other
    /// programs that push one job; dbq itself pushes with `pushMany`.)
    static let push = RedisScript(prelude + """
        -- dbq push v6
        local pending = {}
        local now, now_str = now_ms()
        local ok, id = push_job(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[8], now, now_str, pending)
        if #pending > 0 then redis.call('ZADD', K_PENDING, unpack(pending)) end
        wake()
        return {ok, id}
        """)

    /// ARGV: prefix, (unused, as in `push`), then groups of 6: id, envelope, priority,
    /// runAtMs, uniqueKey, maxAttempts. → only the jobs not queued: per such job its position in
    /// the batch (1-based) and the id of the job holding its id or unique key (a reply per
    /// job cost Redis more to build than the pushes).
    static let pushMany = RedisScript(prelude + """
        -- dbq push many v3
        local p = ARGV[1]
        local now, now_str = now_ms()
        local out, pending = {}, {}
        local n = 0
        for i = 3, #ARGV, 6 do
          n = n + 1
          local ok, id = push_job(p, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], now, now_str, pending)
          if ok == 0 then
            out[#out + 1] = n
            out[#out + 1] = id
          end
        end
        call_chunked('ZADD', K_PENDING, pending, 2000)
        -- Scheduled jobs wake idle workers too: they learn the new due time from a fetch.
        wake()
        return out
        """)

    /// ARGV: prefix, entry, slotMs, skipIfRunning (1/0), id, envelope, priority, maxAttempts.
    /// Fires one schedule slot at most once: refused if the entry's cursor is already at
    /// or past the slot; with skipIfRunning, the slot is passed over (cursor moved, nothing
    /// queued) while the entry's previous job is queued or running.
    /// → {1, id} fired, {0, 'done'} already handled, {2, previousID} skipped for overlap.
    static let fireSlot = RedisScript(prelude + """
        -- dbq beat fire v4
        local p, entry, slot = ARGV[1], ARGV[2], tonumber(ARGV[3])
        local bk = p .. 'beat:' .. entry
        local last = tonumber(redis.call('HGET', bk, 'cursor') or '-1')
        if slot <= last then return {0, 'done'} end
        local previous = redis.call('HGET', bk, 'job')
        if previous then
          local f = redis.call('HMGET', p .. 'job:' .. previous, 'state', 'finished')
          if f[1] == 'succeeded' then redis.call('HSET', bk, 'success', f[2]) end
          if ARGV[4] == '1' and (f[1] == 'pending' or f[1] == 'scheduled' or f[1] == 'running') then
            redis.call('HSET', bk, 'cursor', slot)
            redis.call('HINCRBY', bk, 'overlap_skipped', 1)
            return {2, previous}
          end
        end
        local now, now_str = now_ms()
        local pending = {}
        push_job(p, ARGV[5], ARGV[6], ARGV[7], 0, '', ARGV[8], now, now_str, pending)
        if #pending > 0 then redis.call('ZADD', K_PENDING, unpack(pending)) end
        wake()
        redis.call('HSET', p .. 'job:' .. ARGV[5], 'beat_slot', slot, 'beat_entry', entry)
        redis.call('HSET', bk, 'cursor', slot, 'job', ARGV[5], 'slot', slot, 'fired_at', now_str)
        return {1, ARGV[5]}
        """)

    /// ARGV: prefix, entry, cursorMs. Moves an entry's cursor forward (slots dropped by
    /// the catch-up policy, or the start of a new entry); never backwards.
    static let advanceCursor = RedisScript(prelude + """
        -- dbq beat advance v2
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
        -- dbq fetch v6
        local p, max, worker, lease = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
        local now, now_str = now_ms()
        local first = redis.call('ZRANGE', K_SCHEDULED, 0, 0, 'WITHSCORES')
        if first[2] and tonumber(first[2]) <= now then
          local due = redis.call('ZRANGEBYSCORE', K_SCHEDULED, '-inf', now, 'LIMIT', 0, 1000)
          local promoted = {}
          for _, id in ipairs(due) do
            local jk = p .. 'job:' .. id
            local priority = redis.call('HGET', jk, 'priority')
            if priority then
              redis.call('HSET', jk, 'state', 'pending')
              promoted[#promoted + 1] = pending_score_text(priority, now)
              promoted[#promoted + 1] = id
            end
          end
          call_chunked('ZREM', K_SCHEDULED, due, 2000)
          call_chunked('ZADD', K_PENDING, promoted, 2000)
        end
        local out = {}
        local popped = redis.call('ZPOPMIN', K_PENDING, max)
        local n = #popped / 2
        if n > 0 then
          -- One fence increment and one ZADD for the batch: tokens are base+1 … base+n.
          -- Never below Redis' clock × 1024: a Redis that lost its last writes (a restart
          -- from an older RDB, a failover to a replica that missed them) rolls the counter
          -- back with the leases, but not its clock, so no token it issued before the loss
          -- is issued again (1,024 tokens a millisecond before the counter runs ahead of
          -- the clock; far more than any drain here reaches, and a restart takes seconds).
          local base = redis.call('INCRBY', K_FENCE, n) - n
          local floor = now * 1024
          if base < floor then
            base = floor
            redis.call('SET', K_FENCE, string.format('%d', floor + n))
          end
          -- Numbers become text once per call, not once per job (Lua formats each number it passes).
          local deadline = tostring(now + lease)
          local running = {}
          for i = 1, n do
            local id = popped[2 * i - 1]
            local jk = p .. 'job:' .. id
            local f = redis.call('HMGET', jk, 'envelope', 'attempt')
            if f[1] then
              local attempt = tonumber(f[2] or 0) + 1
              -- As text: Redis and Lua would write a number this large in exponent form.
              local token = string.format('%d', base + i)
              redis.call('HSET', jk, 'state', 'running', 'attempt', attempt, 'token', token, 'worker', worker,
                'lease', deadline, 'started', now_str)
              running[#running + 1] = deadline
              running[#running + 1] = id
              out[#out + 1] = {id, token, attempt, f[1]}
            end
          end
          call_chunked('ZADD', K_RUNNING, running, 2000)
          -- Jobs left for others: the wake is passed on, so a bulk push wakes as many idle
          -- workers as it has jobs for, one after another, not one.
          if redis.call('ZCARD', K_PENDING) > 0 then wake() end
        end
        local nxt = redis.call('ZRANGE', K_SCHEDULED, 0, 0, 'WITHSCORES')
        local wait = -1
        if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now) end
        return {out, wait}
        """)

    /// ARGV: prefix, leaseMs, then id, token pairs. → per job 1 held, 0 lost, 2 cancel requested.
    static let heartbeat = RedisScript(prelude + """
        -- dbq heartbeat v2
        local p, lease = ARGV[1], tonumber(ARGV[2])
        local deadline = now_ms() + lease
        local out, renewed = {}, {}
        for i = 3, #ARGV, 2 do
          local id, token = ARGV[i], ARGV[i + 1]
          local jk = p .. 'job:' .. id
          local fields = redis.call('HMGET', jk, 'state', 'token', 'cancel')
          if fields[1] == 'running' and fields[2] == token then
            redis.call('HSET', jk, 'lease', deadline)
            renewed[#renewed + 1] = deadline
            renewed[#renewed + 1] = id
            if fields[3] == '1' then out[#out + 1] = 2 else out[#out + 1] = 1 end
          else
            out[#out + 1] = 0
          end
        end
        call_chunked('ZADD', K_RUNNING, renewed, 2000)
        return out
        """)

    /// ARGV: prefix, keepSucceededMs, keepFailedMs, then groups of 5: id, token, outcome
    /// (ok, retry, dead, release, cancelled), data (result or error), retryAfterMs. A retry
    /// or release of a job whose cancellation was asked for ends it cancelled.
    /// → per job 1 accepted, 0 refused (stale token or no longer running).
    static let finish = RedisScript(prelude + """
        -- dbq finish v7
        local p, keep_ok, keep_failed = ARGV[1], ARGV[2], ARGV[3]
        local now, now_str = now_ms()
        local now_s = tostring(now)
        local out = {}
        -- Succeeded jobs leave `running` and join `succeeded` in one call each per batch.
        local finished, succeeded = {}, {}
        local woken = false
        for i = 4, #ARGV, 5 do
          local id, token, outcome, data = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
          local jk = p .. 'job:' .. id
          local fields = redis.call('HMGET', jk, 'state', 'token', 'unique', 'beat_entry', 'priority', 'done_token', 'cancel')
          -- A job whose cancellation was asked for is not run again: a retry or a hand-back
          -- ends it cancelled (a success or a death still ends it as it ended).
          if fields[7] and (outcome == 'retry' or outcome == 'release') then outcome = 'cancelled' end
          if fields[1] ~= 'running' and fields[6] == token then
            -- This very completion, sent again (its first reply was lost): accepted once.
            out[#out + 1] = 1
          elseif fields[1] == 'running' and fields[2] == token then
            finished[#finished + 1] = id
            if outcome == 'ok' then
              redis.call('HSET', jk, 'state', 'succeeded', 'result', data, 'finished', now_str, 'token', '0', 'lease', '0', 'error', '', 'done_token', token)
              succeeded[#succeeded + 1] = now_s
              succeeded[#succeeded + 1] = id
              release_unique(p, fields[3], id)
              finish_ttl(jk, keep_ok)
              record_beat_outcome(p, fields[4], id, 'succeeded', now_s)
            elseif outcome == 'retry' then
              local at = now + tonumber(ARGV[i + 4])
              redis.call('HSET', jk, 'state', 'scheduled', 'error', data, 'run_at', at, 'token', 0, 'lease', 0)
              redis.call('ZADD', K_SCHEDULED, at, id)
              -- Idle workers learn the due time from their next fetch.
              if not woken then wake() woken = true end
            elseif outcome == 'dead' then
              redis.call('HSET', jk, 'state', 'dead', 'error', data, 'finished', now_str, 'token', '0', 'lease', '0', 'done_token', token)
              redis.call('ZADD', K_DEAD, now_s, id)
              release_unique(p, fields[3], id)
              finish_ttl(jk, keep_failed)
              record_beat_outcome(p, fields[4], id, 'dead', now)
            elseif outcome == 'release' then
              redis.call('HINCRBY', jk, 'attempt', -1)
              redis.call('HSET', jk, 'state', 'pending', 'token', 0, 'lease', 0)
              redis.call('ZADD', K_PENDING, pending_score(fields[5], now), id)
              wake()
            else
              redis.call('HSET', jk, 'state', 'cancelled', 'finished', now_str, 'token', '0', 'lease', '0', 'done_token', token)
              redis.call('ZADD', K_CANCELLED, now_s, id)
              release_unique(p, fields[3], id)
              finish_ttl(jk, keep_failed)
              record_beat_outcome(p, fields[4], id, 'cancelled', now)
            end
            out[#out + 1] = 1
          else
            out[#out + 1] = 0
          end
        end
        call_chunked('ZREM', K_RUNNING, finished, 2000)
        call_chunked('ZADD', K_SUCCEEDED, succeeded, 2000)
        return out
        """)

    /// ARGV: prefix, id, token, progress JSON. Stored only under a held lease.
    static let progress = RedisScript(prelude + """
        -- dbq progress v2
        local jk = ARGV[1] .. 'job:' .. ARGV[2]
        local fields = redis.call('HMGET', jk, 'state', 'token')
        if fields[1] == 'running' and fields[2] == ARGV[3] then
          redis.call('HSET', jk, 'progress', ARGV[4])
          return 1
        end
        return 0
        """)

    /// ARGV: prefix, limit, keepFailedMs, keepSucceededMs, intervalMs. Jobs whose lease
    /// lapsed go back to pending (their token is voided, so the lost worker can no longer
    /// finish them), to dead past max attempts, or to cancelled when a cancel was
    /// requested. One worker of a fleet does it per interval (a lock with that time to
    /// live): the fleet's cost does not grow with its size. → {requeued, dead, cancelled}
    static let rescue = RedisScript(prelude + """
        -- dbq rescue v4
        local p, limit, keep_failed, keep_ok = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
        if tonumber(ARGV[5]) > 0 and not redis.call('SET', p .. 'rescuer', '1', 'NX', 'PX', ARGV[5]) then return {0, 0, 0} end
        local now = now_ms()
        -- Finished jobs' hashes expire; forget their ids with them (once a minute is enough).
        if redis.call('SET', p .. 'trimmed', '1', 'NX', 'PX', 60000) then
          if keep_ok > 0 then redis.call('ZREMRANGEBYSCORE', K_SUCCEEDED, '-inf', now - keep_ok) end
          if tonumber(keep_failed) > 0 then
            redis.call('ZREMRANGEBYSCORE', K_DEAD, '-inf', now - tonumber(keep_failed))
            redis.call('ZREMRANGEBYSCORE', K_CANCELLED, '-inf', now - tonumber(keep_failed))
          end
        end
        local lapsed = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', now, 'LIMIT', 0, limit)
        -- Ends a lapsed job for good: its state, its set, its unique key, its expiry, its beat entry.
        local function settle(jk, id, state, f, keep)
          redis.call('HSET', jk, 'state', state, 'finished', now)
          redis.call('ZADD', SET_OF[state], now, id)
          release_unique(p, f[7], id)
          finish_ttl(jk, keep)
          record_beat_outcome(p, f[8], id, state, now)
        end
        local requeued, dead, cancelled = 0, 0, 0
        for _, id in ipairs(lapsed) do
          local jk = p .. 'job:' .. id
          redis.call('ZREM', K_RUNNING, id)
          local f = redis.call('HMGET', jk, 'state', 'attempt', 'max', 'worker', 'priority', 'cancel', 'unique', 'beat_entry')
          if f[1] == 'running' then
            local reason = 'lease lapsed on attempt ' .. f[2] .. ' (worker ' .. (f[4] or '?') .. ' stopped renewing it)'
            redis.call('HSET', jk, 'token', 0, 'lease', 0, 'error', reason)
            if f[6] == '1' then
              -- Its cancellation was asked for: a job someone cancelled never runs again.
              settle(jk, id, 'cancelled', f, keep_failed)
              cancelled = cancelled + 1
            elseif tonumber(f[2]) >= tonumber(f[3]) then
              settle(jk, id, 'dead', f, keep_failed)
              dead = dead + 1
            else
              redis.call('HSET', jk, 'state', 'pending')
              redis.call('ZADD', K_PENDING, pending_score(f[5] or 5, now), id)
              wake()
              requeued = requeued + 1
            end
          end
        end
        return {requeued, dead, cancelled}
        """)

    /// ARGV: prefix, id, keepFailedMs. → the state after: cancelled at once if waiting;
    /// 'running' with a cancel request (honoured at the next heartbeat); else unchanged.
    static let cancel = RedisScript(prelude + """
        -- dbq cancel v2
        local p, id = ARGV[1], ARGV[2]
        local jk = p .. 'job:' .. id
        local f = redis.call('HMGET', jk, 'state', 'unique')
        local state = f[1]
        if not state then return '' end
        if state == 'pending' or state == 'scheduled' then
          local now = now_ms()
          redis.call('ZREM', SET_OF[state], id)
          redis.call('HSET', jk, 'state', 'cancelled', 'finished', now)
          redis.call('ZADD', K_CANCELLED, now, id)
          release_unique(p, f[2], id)
          finish_ttl(jk, ARGV[3])
          return 'cancelled'
        elseif state == 'running' then
          redis.call('HSET', jk, 'cancel', '1')
        end
        return state
        """)

    /// ARGV: prefix, id. Dead or cancelled (or succeeded) → pending again with fresh attempts.
    static let retry = RedisScript(prelude + """
        -- dbq retry v2
        local p, id = ARGV[1], ARGV[2]
        local jk = p .. 'job:' .. id
        local f = redis.call('HMGET', jk, 'state', 'priority')
        if not f[1] then return '' end
        if f[1] ~= 'dead' and f[1] ~= 'cancelled' and f[1] ~= 'succeeded' then return f[1] end
        redis.call('ZREM', SET_OF[f[1]], id)
        redis.call('PERSIST', jk)
        redis.call('HSET', jk, 'state', 'pending', 'attempt', 0, 'token', 0)
        redis.call('HDEL', jk, 'error', 'result', 'finished', 'cancel', 'progress', 'done_token')
        redis.call('ZADD', K_PENDING, pending_score(f[2], now_ms()), id)
        wake()
        return 'pending'
        """)

    /// ARGV: prefix, state, olderThanMs (0 = all). Removes finished jobs of one state.
    static let purge = RedisScript(prelude + """
        -- dbq purge v2
        local p, set = ARGV[1], SET_OF[ARGV[2]]
        local cutoff = now_ms() - tonumber(ARGV[3])
        if tonumber(ARGV[3]) == 0 then cutoff = '+inf' end
        local ids = redis.call('ZRANGEBYSCORE', set, '-inf', cutoff, 'LIMIT', 0, 10000)
        for _, id in ipairs(ids) do redis.call('DEL', p .. 'job:' .. id) end
        call_chunked('ZREM', set, ids, 2000)
        return #ids
        """)
}
