import DBQSupport
import Logging
import PostgresClient
import Queue

/// How dbq takes locks on a live database: every attempt runs under `lock_timeout`, so
/// the application's queries never queue behind dbq for longer than that; an attempt
/// that times out on a lock (SQLSTATE 55P03) is undone and retried after a backoff, up to
/// `attempts` times, then the job fails retryably (the queue tries it again later).
public struct LockRetry: Sendable, Equatable {
    public var lockTimeout: Duration
    public var attempts: Int
    public var backoff: Backoff

    public init(lockTimeout: Duration = .seconds(2), attempts: Int = 8, backoff: Backoff = Backoff(base: .milliseconds(200), cap: .seconds(5))) {
        self.lockTimeout = lockTimeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
    }

    /// A job's own `lock_timeout` in milliseconds (2 s when the payload names none).
    public init(lockTimeoutMs: Int?, attempts: Int = 8) {
        self.init(lockTimeout: .milliseconds(lockTimeoutMs ?? 2000), attempts: attempts)
    }

    public static func isLockTimeout(_ error: any Error) -> Bool {
        (error as? PostgresError)?.sqlState == "55P03"
    }

    /// What `run` throws once every attempt timed out on a lock.
    static let notGranted = "a lock was not granted within"

    /// True for `run`'s error after every attempt timed out (a job that runs many
    /// statements may pass over that one and go on).
    public static func isNotGranted(_ error: any Error) -> Bool {
        (error as? JobError)?.message.contains(notGranted) == true
    }

    /// `SET lock_timeout` for the session, then `body` (one whole attempt, which must
    /// leave no transaction open when it throws) until it does not time out on a lock.
    /// `waited` hears of each timed-out attempt (for progress and results).
    public func run<T: Sendable>(
        _ connection: PostgresConnection, what: String, logger: Logger,
        waited: (@Sendable (Int) async -> Void)? = nil, _ body: () async throws -> T
    ) async throws -> T {
        _ = try await connection.execute("SET lock_timeout = '\(lockTimeout.milliseconds)ms'")
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch where Self.isLockTimeout(error) {
                attempt += 1
                await waited?(attempt)
                guard attempt < attempts else {
                    throw JobError("\(what): \(Self.notGranted) \(lockTimeout.milliseconds) ms in \(attempts) attempts (another session holds it); the job will be tried again",
                                      retryable: true)
                }
                let delay = backoff.delay(attempt: attempt - 1)
                logger.info("lock not granted in time; retrying", metadata: ["what": "\(what)", "attempt": "\(attempt)", "delay_ms": "\(delay.milliseconds)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}
