import Dispatch

/// A serial lane on which blocking C calls (hiredis, libpq, libcurl, file I/O) run,
/// so they never occupy a thread of Swift's cooperative pool.
///
/// A lane is a serial `DispatchQueue`. Serial queues created without a target run on
/// libdispatch's overcommit pool, which adds a thread when the others are blocked: a
/// connection parked in `BLMOVE` for a second cannot starve another connection's lane.
/// Work on one lane runs in order, one item at a time, which is what confines a C handle
/// to one thread at a time.
public final class BlockingLane: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `body` on the lane and returns its result to the awaiting task.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result(catching: body))
            }
        }
    }

    /// Runs `body` on the lane when the result cannot fail.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: body())
            }
        }
    }

    /// Queues `body` on the lane and returns at once (fire and forget).
    public func submit(_ body: @escaping @Sendable () -> Void) {
        queue.async(execute: body)
    }

    /// Runs `body` on a fresh lane: for one-off blocking work with no handle to confine.
    public static func detached<T: Sendable>(
        label: String = "dbq.blocking",
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await BlockingLane(label: label).run(body)
    }
}
