import Foundation
import Synchronization

/// Shared or exclusive: backups of a database share its lock; retention takes it alone.
public enum LockMode: String, Sendable {
    case shared, exclusive
}

/// Named reader-writer locks with a time to live, held by an owner that renews them.
/// An owner that dies (SIGKILL) stops renewing and its hold lapses after `ttl`.
public protocol ResourceLocks: Sendable {
    /// Takes the lock if it is free for `mode`; false if someone else holds it.
    func tryAcquire(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool
    /// Extends the owner's hold; false if it had lapsed.
    func renew(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool
    func release(_ name: String, mode: LockMode, owner: String) async throws
}

/// The lock was held by others for longer than the caller would wait.
public struct LockBusyError: Error, Sendable, CustomStringConvertible {
    public var name: String
    public var waited: Duration
    public var description: String {
        "\(name) is locked (waited \(waited.components.seconds) s); it is released when the running job ends, and this job will retry"
    }
}

extension ResourceLocks {
    /// Runs `body` holding the lock: waits up to `wait` for it (then throws a retryable
    /// `LockBusyError`), renews it every `renewEvery` (`ttl / 3` by default), releases it after. A renewal that
    /// fails (Redis restarting, a connection killed) is tried again sooner, and only when
    /// no renewal has succeeded for `ttl` (the hold has really lapsed) is `body`
    /// cancelled; a renewal that finds the hold gone cancels it at once.
    public func withLock<T: Sendable>(
        _ name: String, mode: LockMode, owner: String, ttl: Duration = .seconds(30), wait: Duration = .seconds(60),
        renewEvery: Duration? = nil, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        var attempt = 0
        // The hold is counted from before the request that took it: never longer than Redis counts it.
        var heldSince = ContinuousClock.now
        while try await !tryAcquire(name, mode: mode, owner: owner, ttl: ttl) {
            if ContinuousClock.now - start >= wait {
                throw JobError.retryable(LockBusyError(name: name, waited: wait).description)
            }
            try await Task.sleep(for: min(.seconds(1), .milliseconds(50) * (1 << min(attempt, 5))))
            attempt += 1
            heldSince = ContinuousClock.now
        }
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { [heldSince] in
                    try await self.keepRenewing(name, mode: mode, owner: owner, ttl: ttl, every: renewEvery ?? ttl / 3, since: heldSince)
                    return nil
                }
                group.addTask { try await body() }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw CancellationError()
            })
        } catch {
            outcome = .failure(error)
        }
        try? await release(name, mode: mode, owner: owner)
        return try outcome.get()
    }
}

extension ResourceLocks {
    /// Renews the hold `every` so often until cancelled; throws when it is lost. The hold
    /// is good until `ttl` after the last renewal sent (or `since`): transient errors
    /// before then are retried three times as often.
    func keepRenewing(_ name: String, mode: LockMode, owner: String, ttl: Duration, every: Duration,
                      since: ContinuousClock.Instant) async throws {
        var confirmed = since
        var delay = every
        while true {
            try await Task.sleep(for: delay)
            let sent = ContinuousClock.now
            let renewed: Bool
            do {
                renewed = try await renew(name, mode: mode, owner: owner, ttl: ttl)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // Not yet lost: the hold runs until `ttl` after the last good renewal.
                if ContinuousClock.now - confirmed >= ttl {
                    throw JobError.retryable("lost the lock \(name): no renewal got through for \(ttl.components.seconds) s (\(error)); the job stops and will retry")
                }
                delay = min(every / 3, confirmed + ttl - ContinuousClock.now)
                continue
            }
            guard renewed else {
                throw JobError.retryable("lost the lock \(name) (a renewal came too late); the job stops and will retry")
            }
            confirmed = sent
            delay = every
        }
    }
}

/// Locks in this process's memory, with the Redis locks' semantics: for `dbq run` and tests.
public final class MemoryLocks: ResourceLocks {
    private struct Lock {
        var shared: [String: ContinuousClock.Instant] = [:]
        var exclusive: (owner: String, until: ContinuousClock.Instant)?
    }
    private let locks = Mutex<[String: Lock]>([:])

    public init() {}

    public func tryAcquire(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool {
        let now = ContinuousClock.now
        return locks.withLock { all in
            var lock = all[name] ?? Lock()
            lock.shared = lock.shared.filter { $0.value > now }
            if let x = lock.exclusive, x.until <= now { lock.exclusive = nil }
            defer { all[name] = lock }
            if let x = lock.exclusive, x.owner != owner { return false }
            switch mode {
            case .shared:
                lock.shared[owner] = now + ttl
            case .exclusive:
                if !lock.shared.isEmpty { return false }
                lock.exclusive = (owner, now + ttl)
            }
            return true
        }
    }

    public func renew(_ name: String, mode: LockMode, owner: String, ttl: Duration) async throws -> Bool {
        let now = ContinuousClock.now
        return locks.withLock { all in
            guard var lock = all[name] else { return false }
            defer { all[name] = lock }
            switch mode {
            case .shared:
                guard let until = lock.shared[owner], until > now else { return false }
                lock.shared[owner] = now + ttl
            case .exclusive:
                guard let x = lock.exclusive, x.owner == owner, x.until > now else { return false }
                lock.exclusive = (owner, now + ttl)
            }
            return true
        }
    }

    public func release(_ name: String, mode: LockMode, owner: String) async throws {
        locks.withLock { all in
            switch mode {
            case .shared: all[name]?.shared[owner] = nil
            case .exclusive: if all[name]?.exclusive?.owner == owner { all[name]?.exclusive = nil }
            }
        }
    }
}
