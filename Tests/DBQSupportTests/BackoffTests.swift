import DBQSupport
import Testing

@Suite("Backoff with full jitter")
struct BackoffTests {
    let backoff = Backoff(base: .milliseconds(100), cap: .seconds(5))

    @Test("ceiling doubles from the base up to the cap", arguments: [
        (0, 100), (1, 200), (2, 400), (3, 800), (4, 1600), (5, 3200), (6, 5000), (7, 5000), (40, 5000), (62, 5000), (1000, 5000),
    ])
    func ceiling(attempt: Int, milliseconds: Int64) {
        #expect(backoff.ceiling(attempt: attempt) == .milliseconds(milliseconds))
    }

    @Test("negative attempts are treated as the first")
    func negativeAttempt() {
        #expect(backoff.ceiling(attempt: -3) == .milliseconds(100))
    }

    @Test("every delay lies in [0, ceiling) and the draws spread over the range")
    func delaysAreBoundedAndSpread() {
        var generator = SplitMix64(seed: 42)
        for attempt in 0..<12 {
            let ceiling = backoff.ceiling(attempt: attempt)
            var lowHalf = 0
            for _ in 0..<400 {
                let delay = backoff.delay(attempt: attempt, using: &generator)
                #expect(delay >= .zero && delay < ceiling)
                if delay < ceiling / 2 { lowHalf += 1 }
            }
            // Full jitter is uniform: about half the draws fall in each half.
            #expect((120...280).contains(lowHalf))
        }
    }

    @Test("the same seed gives the same schedule")
    func deterministicWithSeed() {
        var a = SplitMix64(seed: 7), b = SplitMix64(seed: 7)
        let first = (0..<10).map { backoff.delay(attempt: $0, using: &a) }
        let second = (0..<10).map { backoff.delay(attempt: $0, using: &b) }
        #expect(first == second)
    }

    @Test("huge bases saturate instead of overflowing")
    func saturates() {
        let big = Backoff(base: .seconds(1_000_000_000), cap: .seconds(2_000_000_000))
        #expect(big.ceiling(attempt: 62) == .seconds(2_000_000_000))
    }
}
