import DBQSupport
import Foundation
import Logging
import Queue
import Testing

/// The worker over the in-memory queue, in real (short) time.
@Suite("Worker")
struct WorkerTests {
    /// Leases long enough, and a rescuer rare enough, that a busy test machine never
    /// lapses a lease here: lapses are tested with a manual clock and real processes.
    func worker(_ queue: MemoryQueue, concurrency: Int = 4, grace: Duration = .seconds(5), lease: Duration = .seconds(60),
                exitWhenIdle: Bool = true, idleWait: Duration = .milliseconds(50)) -> Worker {
        Worker(driver: queue, registry: .builtins, configuration: WorkerConfiguration(
            queues: [("q", 1)], concurrency: concurrency, lease: lease, idleWait: idleWait, shutdownGrace: grace,
            rescueInterval: .seconds(3600), retryPolicy: RetryPolicy(backoff: Backoff(base: .milliseconds(20), cap: .milliseconds(50))),
            workerID: "test", exitWhenIdle: exitWhenIdle), logger: Logger(label: "test.worker"))
    }

    func sleep(_ seconds: Double, fail: String? = nil, permanent: Bool? = nil, failAttempts: Int? = nil, max: Int = 3, timeout: Double = 60) throws -> JobEnvelope {
        JobEnvelope(kind: "sleep", version: 1, payload: try JSONValue(encoding: SleepJob.Payload(seconds: seconds, fail: fail, permanent: permanent, failAttempts: failAttempts)),
                    queue: "q", maxAttempts: max, timeoutSeconds: timeout)
    }

    @Test("runs every job once and stops when idle")
    func drains() async throws {
        let q = MemoryQueue()
        var ids: [String] = []
        for _ in 0..<500 { ids.append(try await q.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: "q")).id) }
        let w = worker(q, concurrency: 16)
        try await w.run()
        #expect(ids.allSatisfy { q.record($0)?.state == .succeeded && q.record($0)?.attempt == 1 })
        #expect(w.finishedCount == 500)
    }

    @Test("a failing job is retried with backoff and then succeeds; progress and result are stored")
    func retries() async throws {
        let q = MemoryQueue()
        let id = try await q.push(try sleep(0.05, fail: "flaky", failAttempts: 2, max: 3)).id
        try await worker(q).run()
        let record = try #require(q.record(id))
        #expect(record.state == .succeeded)
        #expect(record.attempt == 3)
        #expect(record.result?["attempt"] == .number(3))
        #expect(record.progress?.fraction == 1)
    }

    @Test("a permanent failure goes to dead after one attempt; retryable ones after max attempts")
    func dead() async throws {
        let q = MemoryQueue()
        let permanent = try await q.push(try sleep(0, fail: "bad input", permanent: true, max: 5)).id
        let exhausted = try await q.push(try sleep(0, fail: "down", max: 2)).id
        try await worker(q).run()
        #expect(q.record(permanent)?.state == .dead)
        #expect(q.record(permanent)?.attempt == 1)
        #expect(q.record(permanent)?.error == "not retryable: bad input")
        #expect(q.record(exhausted)?.state == .dead)
        #expect(q.record(exhausted)?.error == "failed 2 of 2 attempts; last error: down")
    }

    @Test("an attempt longer than the job's timeout is cancelled and counted as a failure")
    func timeout() async throws {
        let q = MemoryQueue()
        let id = try await q.push(try sleep(600, max: 2, timeout: 0.2)).id
        let started = ContinuousClock.now
        try await worker(q).run()
        #expect(q.record(id)?.state == .dead)
        #expect(q.record(id)?.error?.contains("timed out after 0.2 s") == true)
        // A no-hang bound far above any load, far below the 20 minutes two attempts would take.
        #expect(ContinuousClock.now - started < .seconds(120), "no hang")
    }

    @Test("unknown kinds, newer versions and bad payloads go to dead with the reason; the worker goes on")
    func undecodable() async throws {
        let q = MemoryQueue()
        let unknown = try await q.push(JobEnvelope(kind: "nosuch", version: 1, payload: .null, queue: "q")).id
        let newer = try await q.push(JobEnvelope(kind: "sleep", version: 9, payload: .object(["seconds": .number(0)]), queue: "q")).id
        let shape = try await q.push(JobEnvelope(kind: "sleep", version: 1, payload: .object(["secs": .number(0)]), queue: "q")).id
        let good = try await q.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: "q")).id
        try await worker(q).run()
        #expect(q.record(unknown)?.error?.contains("unknown job kind 'nosuch' (payload version 1)") == true)
        #expect(q.record(newer)?.error?.contains("payload version 9 of kind 'sleep' is newer") == true)
        #expect(q.record(shape)?.error?.contains("missing field 'seconds'") == true)
        #expect([unknown, newer, shape].allSatisfy { q.record($0)?.state == .dead && q.record($0)?.attempt == 1 })
        #expect(q.record(good)?.state == .succeeded)
    }

    @Test("graceful shutdown: running jobs past the grace period are handed back, not lost")
    func shutdownHandsBack() async throws {
        let q = MemoryQueue()
        let ids = [try await q.push(try sleep(600)).id, try await q.push(try sleep(600)).id]
        let w = worker(q, grace: .milliseconds(300), exitWhenIdle: false)
        let run = Task { try await w.run() }
        while ids.contains(where: { q.record($0)?.state != .running }) { try await Task.sleep(for: .milliseconds(10)) }
        let started = ContinuousClock.now
        w.shutdown()
        try await run.value
        #expect(ContinuousClock.now - started < .seconds(300), "no hang: the 600 s jobs were handed back")
        for id in ids {
            #expect(q.record(id)?.state == .pending)
            #expect(q.record(id)?.attempt == 0)
        }
    }

    @Test("graceful shutdown: jobs that finish within the grace period complete")
    func shutdownLetsFinish() async throws {
        let q = MemoryQueue()
        let id = try await q.push(try sleep(0.3)).id
        let w = worker(q, grace: .seconds(5), exitWhenIdle: false)
        let run = Task { try await w.run() }
        // Past pending (a slow poll may find it already done: the outcome below holds either way).
        while q.record(id)?.state == .pending { try await Task.sleep(for: .milliseconds(10)) }
        w.shutdown()
        try await run.value
        #expect(q.record(id)?.state == .succeeded)
    }

    @Test("a stop wakes an idle worker: one waiting an hour for work stops at once")
    func stopWhileIdle() async throws {
        let q = MemoryQueue()
        let id = try await q.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: "q")).id
        let w = worker(q, exitWhenIdle: false, idleWait: .seconds(3600))
        let run = Task { try await w.run() }
        while q.record(id)?.state != .succeeded { try await Task.sleep(for: .milliseconds(10)) }
        // Its one job reported and nothing left: the worker is in its hour-long wait.
        try await Task.sleep(for: .milliseconds(200))
        w.shutdown()
        let stopped = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await run.value) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(60))
                return false
            }
            let first = await group.next() ?? false
            run.cancel()
            group.cancelAll()
            return first
        }
        #expect(stopped, "the worker waited out its idle wait before stopping")
    }

    @Test("a cancel request reaches a running job at its next heartbeat")
    func cancelRunning() async throws {
        let q = MemoryQueue()
        let id = try await q.push(try sleep(30)).id
        // A lease no load can lapse: the cancel arrives with the heartbeat, not with a rescue.
        let w = worker(q, lease: .seconds(30), exitWhenIdle: false)
        let run = Task { try await w.run() }
        while q.record(id)?.state != .running { try await Task.sleep(for: .milliseconds(10)) }
        _ = q.cancel(id)
        while q.record(id)?.state == .running { try await Task.sleep(for: .milliseconds(20)) }
        #expect(q.record(id)?.state == .cancelled)
        w.shutdown()
        try await run.value
    }
}
