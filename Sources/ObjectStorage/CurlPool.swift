import DBQSupport
import Synchronization

/// Easy handles, each with the lane it runs on. A request takes a free slot (or makes
/// one), performs on the slot's lane, and gives the slot back, so connections are reused
/// and as many requests run at once as there are callers.
final class CurlPool: Sendable {
    private final class Slot: @unchecked Sendable {
        // @unchecked Sendable: `easy` is used only inside `lane.run`, and a slot is held
        // by one request at a time (taken from and returned to the pool under its lock).
        let easy = CurlEasy()
        let lane = BlockingLane(label: "dbq.curl")
    }

    private let free = Mutex<[Slot]>([])
    private let maxIdle: Int

    init(maxIdle: Int = 16) { self.maxIdle = maxIdle }

    func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        let slot = free.withLock { $0.popLast() } ?? Slot()
        defer {
            free.withLock { slots in
                if slots.count < maxIdle { slots.append(slot) }
            }
        }
        return try await slot.lane.run { try slot.easy.perform(request) }
    }
}
