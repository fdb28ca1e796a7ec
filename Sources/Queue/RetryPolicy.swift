import DBQSupport

/// Decides what happens to a job whose attempt failed: pure, with the random source and
/// the numbers as parameters, so every branch is tested without a clock.
public struct RetryPolicy: Sendable, Equatable {
    public var backoff: Backoff

    public init(backoff: Backoff = Backoff(base: .seconds(1), cap: .seconds(600))) {
        self.backoff = backoff
    }

    public enum Decision: Sendable, Equatable {
        /// Run again after this delay.
        case retry(after: Duration)
        /// No more attempts; the reason says why.
        case dead(reason: String)
    }

    /// `attempt` is the attempt that just failed (1 for the first).
    public func decide(attempt: Int, maxAttempts: Int, error: JobError,
                       using generator: inout some RandomNumberGenerator) -> Decision {
        if !error.isRetryable {
            return .dead(reason: "not retryable: \(error.message)")
        }
        if attempt >= maxAttempts {
            return .dead(reason: "failed \(attempt) of \(maxAttempts) attempts; last error: \(error.message)")
        }
        return .retry(after: backoff.delay(attempt: attempt - 1, using: &generator))
    }
}
