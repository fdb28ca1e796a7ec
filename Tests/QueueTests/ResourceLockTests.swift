import Foundation
@testable import Queue
import Synchronization
import Testing

/// Locks whose renewals fail on demand: what a Redis restart or a killed connection looks like to a holder.
final class FlakyLocks: ResourceLocks {
    let inner = MemoryLocks()
    /// Renewals fail while this is true, or while `failNext` is above zero.
    let failing = Mutex(false)
    let failNext = Mutex(0)
    let renewals = Mutex(0)
    let succeeded = Mutex(0)

    func tryAcquire(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool {
        try await inner.tryAcquire(name, mode: mode, owner: owner, ttl: ttl)
    }
    func renew(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool {
        renewals.withLock { $0 += 1 }
        if failing.withLock({ $0 }) { throw URLError(.networkConnectionLost) }
        if failNext.withLock({ n in defer { n = max(0, n - 1) }; return n > 0 }) { throw URLError(.networkConnectionLost) }
        let ok = try await inner.renew(name, mode: mode, owner: owner, ttl: ttl)
        if ok { succeeded.withLock { $0 += 1 } }
        return ok
    }
    func release(_ name: String, mode: LockMode, owner: String) async throws {
        try await inner.release(name, mode: mode, owner: owner)
    }
}

@Suite("Resource locks: holders ride out transient errors, never a lapsed hold")
struct ResourceLockTests {
    @Test("renewals that fail for less than the time to live do not stop the job")
    func transientFailures() async throws {
        let locks = FlakyLocks()
        // Three renewals fail (each retried sooner), far less than the 120 s the hold lasts
        // whatever the load: the test counts renewals, not time.
        locks.failNext.withLock { $0 = 3 }
        let result = try await locks.withLock("db", mode: .shared, owner: "job", ttl: .seconds(120), renewEvery: .milliseconds(300)) {
            while locks.succeeded.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(50)) }
            return "done"
        }
        #expect(result == "done")
        #expect(locks.renewals.withLock { $0 } >= 5)
    }

    @Test("renewals that keep failing for the time to live cancel the job, retryable")
    func lapsed() async throws {
        let locks = FlakyLocks()
        locks.failing.withLock { $0 = true }
        let started = ContinuousClock.now
        await #expect(throws: JobError.self) {
            try await locks.withLock("db", mode: .shared, owner: "job", ttl: .milliseconds(600)) {
                try await Task.sleep(for: .seconds(600))
                return 1
            }
        }
        // Stopped once the hold could have lapsed: not before the ttl, and long before the job's end.
        #expect(ContinuousClock.now - started >= .milliseconds(600))
        #expect(ContinuousClock.now - started < .seconds(300))
    }

    @Test("a renewal that finds the hold gone stops the job at once")
    func lost() async throws {
        let locks = FlakyLocks()
        await #expect(throws: JobError.self) {
            try await locks.withLock("db", mode: .exclusive, owner: "job", ttl: .milliseconds(600)) {
                try await locks.inner.release("db", mode: .exclusive, owner: "job")
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
    }
}
