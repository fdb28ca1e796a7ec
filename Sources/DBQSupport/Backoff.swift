/// Exponential backoff with full jitter: the delay before retry `n` (0-based) is drawn
/// uniformly from `0 ..< min(cap, base · 2ⁿ)`.
///
/// Full jitter spreads a fleet's retries out instead of having every worker hit a
/// recovering server in the same instant. Pure: the random source is a parameter.
public struct Backoff: Sendable, Equatable {
    /// The ceiling of the first delay.
    public var base: Duration
    /// No delay is ever longer than this.
    public var cap: Duration

    public init(base: Duration, cap: Duration) {
        precondition(base > .zero && cap >= base, "backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
    }

    /// The largest delay retry `attempt` can draw: `min(cap, base · 2^attempt)`.
    public func ceiling(attempt: Int) -> Duration {
        let exponent = max(0, min(attempt, 62))
        let baseNanos = base.nanoseconds
        let (scaled, overflow) = baseNanos.multipliedReportingOverflow(by: Int64(1) << Int64(exponent))
        let capNanos = cap.nanoseconds
        return .nanoseconds(overflow ? capNanos : min(capNanos, scaled))
    }

    /// The delay before retry `attempt`, drawn with `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(attempt: attempt).nanoseconds
        guard ceiling > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0..<ceiling, using: &generator))
    }

    /// The delay before retry `attempt`, drawn from the system generator.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

extension Duration {
    /// The whole duration in nanoseconds, saturating at `Int64.max`.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return whole &+ attoseconds / 1_000_000_000
    }

    /// The whole duration in milliseconds.
    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    /// The duration as fractional seconds, for display.
    public var seconds: Double { Double(nanoseconds) / 1e9 }
}
