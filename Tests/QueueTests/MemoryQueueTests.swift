import DBQSupport
import Foundation
import Queue
import Synchronization
import Testing

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let ms = Mutex<Int64>(1_800_000_000_000)
    var now: Int64 { ms.withLock { $0 } }
    func advance(_ d: Duration) { ms.withLock { $0 += d.milliseconds } }
}

@Suite("In-memory queue semantics (leases, tokens, rescue, unique keys, delays)")
struct MemoryQueueTests {
    let clock = ManualClock()
    var queue: MemoryQueue { MemoryQueue(clock: { [clock] in clock.now }) }

    func envelope(_ id: String = JobID.make(), priority: Int = 5, runAt: Date? = nil, unique: String? = nil, max: Int = 3) -> JobEnvelope {
        JobEnvelope(id: id, kind: "noop", version: 1, payload: .object([:]), queue: "q", priority: priority, maxAttempts: max, runAt: runAt, uniqueKey: unique)
    }

    @Test("a fetched job is leased once, under a token; a stale token is refused")
    func leases() async throws {
        let q = queue
        _ = try await q.push(envelope("a"))
        let first = try await q.fetch(queue: "q", max: 10, worker: "w1", lease: .seconds(30))
        #expect(first.jobs.map(\.lease.id) == ["a"])
        #expect(first.jobs[0].attempt == 1)
        #expect(try await q.fetch(queue: "q", max: 10, worker: "w2", lease: .seconds(30)).jobs.isEmpty)
        let stale = Lease(id: "a", queue: "q", token: first.jobs[0].lease.token + 1)
        #expect(try await q.finish([(stale, .succeeded(result: nil))]) == [false])
        #expect(try await q.heartbeat([stale], lease: .seconds(30)) == [.lost])
        #expect(try await q.finish([(first.jobs[0].lease, .succeeded(result: .string("ok")))]) == [true])
        #expect(q.record("a")?.state == .succeeded)
        #expect(try await q.finish([(first.jobs[0].lease, .succeeded(result: nil))]) == [false])
    }

    @Test("a lapsed lease is rescued; the old holder can no longer finish; the next lease has a new token")
    func rescue() async throws {
        let q = queue
        _ = try await q.push(envelope("a"))
        let old = try await q.fetch(queue: "q", max: 1, worker: "w1", lease: .seconds(10)).jobs[0].lease
        clock.advance(.seconds(9))
        #expect(try await q.rescue(queue: "q") == (0, 0))
        #expect(try await q.heartbeat([old], lease: .seconds(10)) == [.held])
        clock.advance(.seconds(11))
        #expect(try await q.rescue(queue: "q") == (1, 0))
        #expect(q.record("a")?.state == .pending)
        #expect(try await q.finish([(old, .succeeded(result: nil))]) == [false])
        let again = try await q.fetch(queue: "q", max: 1, worker: "w2", lease: .seconds(10)).jobs[0]
        #expect(again.attempt == 2)
        #expect(again.lease.token > old.token)
        #expect(try await q.finish([(again.lease, .succeeded(result: nil))]) == [true])
    }

    @Test("a lease that lapses on the last attempt sends the job to dead, saying why")
    func rescueToDead() async throws {
        let q = queue
        _ = try await q.push(envelope("a", max: 1))
        _ = try await q.fetch(queue: "q", max: 1, worker: "w1", lease: .seconds(1))
        clock.advance(.seconds(2))
        #expect(try await q.rescue(queue: "q") == (0, 1))
        #expect(q.record("a")?.state == .dead)
        #expect(q.record("a")?.error?.contains("lease lapsed on attempt 1 (worker w1") == true)
    }

    @Test("higher priority first; first in, first out within a priority")
    func priorities() async throws {
        let q = queue
        for (id, priority) in [("low1", 1), ("high1", 9), ("mid", 5), ("high2", 9), ("low2", 1)] {
            _ = try await q.push(envelope(id, priority: priority))
        }
        let order = try await q.fetch(queue: "q", max: 10, worker: "w", lease: .seconds(5)).jobs.map(\.lease.id)
        #expect(order == ["high1", "high2", "mid", "low1", "low2"])
    }

    @Test("a delayed job never starts early, and the fetch says when it is due")
    func delayed() async throws {
        let q = queue
        let runAt = Date(timeIntervalSince1970: Double(clock.now) / 1000 + 60)
        _ = try await q.push(envelope("later", runAt: runAt))
        let before = try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5))
        #expect(before.jobs.isEmpty)
        #expect(before.nextScheduledIn == .seconds(60))
        clock.advance(.milliseconds(59_999))
        #expect(try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5)).jobs.isEmpty)
        clock.advance(.milliseconds(1))
        #expect(try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5)).jobs.map(\.lease.id) == ["later"])
    }

    @Test("a unique key merges pushes while its job is queued or running, and frees when it ends")
    func unique() async throws {
        let q = queue
        #expect(try await q.push(envelope("a", unique: "nightly")) == .queued(id: "a"))
        #expect(try await q.push(envelope("b", unique: "nightly")) == .merged(existingID: "a"))
        let lease = try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5)).jobs[0].lease
        #expect(try await q.push(envelope("c", unique: "nightly")) == .merged(existingID: "a"))
        _ = try await q.finish([(lease, .succeeded(result: nil))])
        #expect(try await q.push(envelope("d", unique: "nightly")) == .queued(id: "d"))
        #expect(try await q.push(envelope("d")) == .merged(existingID: "d"))
    }

    @Test("retry, dead, release and cancel outcomes")
    func outcomes() async throws {
        let q = queue
        for id in ["r", "d", "h", "c"] { _ = try await q.push(envelope(id)) }
        let leases = Dictionary(uniqueKeysWithValues: try await q.fetch(queue: "q", max: 4, worker: "w", lease: .seconds(5)).jobs.map { ($0.lease.id, $0.lease) })
        _ = try await q.finish([
            (leases["r"]!, .retry(afterMilliseconds: 5000, error: "503")), (leases["d"]!, .dead(error: "bad")),
            (leases["h"]!, .released), (leases["c"]!, .cancelled),
        ])
        #expect(q.record("r")?.state == .scheduled)
        #expect(q.record("r")?.error == "503")
        #expect(q.record("d")?.state == .dead)
        #expect(q.record("h")?.state == .pending)
        #expect(q.record("h")?.attempt == 0)
        #expect(q.record("c")?.state == .cancelled)
        clock.advance(.seconds(5))
        #expect(try await q.fetch(queue: "q", max: 5, worker: "w", lease: .seconds(5)).jobs.map(\.lease.id).sorted() == ["h", "r"])
    }

    @Test("cancelling: at once when waiting, at the next heartbeat when running")
    func cancel() async throws {
        let q = queue
        _ = try await q.push(envelope("waiting"))
        _ = try await q.push(envelope("busy", priority: 9))
        let lease = try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5)).jobs[0].lease
        #expect(lease.id == "busy")
        #expect(q.cancel("waiting") == .cancelled)
        #expect(q.cancel("busy") == .running)
        #expect(try await q.heartbeat([lease], lease: .seconds(5)) == [.cancelRequested])
    }

    @Test("a running job asked to cancel ends cancelled when it fails retryably or is handed back", arguments: [
        Outcome.retry(afterMilliseconds: 0, error: "boom"), .released,
    ])
    func cancelledNotRetried(outcome: Outcome) async throws {
        let q = queue
        _ = try await q.push(envelope("busy"))
        let lease = try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5)).jobs[0].lease
        #expect(q.cancel("busy") == .running)
        #expect(try await q.finish([(lease, outcome)]) == [true])
        #expect(q.record("busy")?.state == .cancelled)
        #expect(try await q.fetch(queue: "q", max: 1, worker: "w", lease: .seconds(5)).jobs.isEmpty)
    }
}
