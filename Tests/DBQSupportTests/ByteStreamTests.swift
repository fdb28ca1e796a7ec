import DBQSupport
import Synchronization
import Testing

@Suite("ByteStream")
struct ByteStreamTests {
    @Test("empty chunks are skipped and the end is sticky")
    func skipsEmpty() async throws {
        let stream = ByteStream.chunks([[1], [], [2, 3], []])
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next() == [1])
        #expect(try await iterator.next() == [2, 3])
        #expect(try await iterator.next() == nil)
        #expect(try await iterator.next() == nil)
    }

    @Test("the pattern is deterministic and of the asked size")
    func pattern() async throws {
        let a = try await ByteStream.pattern(count: 100_003, chunkSize: 4096, seed: 9).collect()
        let b = try await ByteStream.pattern(count: 100_003, chunkSize: 1000, seed: 9).collect()
        #expect(a.count == 100_003)
        #expect(a == b)
        #expect(try await ByteStream.pattern(count: 10, seed: 10).collect() != Array(a.prefix(10)))
    }

    @Test("tap sees every chunk once, in order")
    func tap() async throws {
        let seen = Mutex<[[UInt8]]>([])
        let out = try await ByteStream.chunks([[1], [2], [3]]).tap { chunk in seen.withLock { $0.append(chunk) } }.collect()
        #expect(out == [1, 2, 3])
        #expect(seen.withLock { $0 } == [[1], [2], [3]])
    }

    @Test("collect refuses more than its limit")
    func collectLimit() async {
        await #expect(throws: ByteStreamError.self) {
            _ = try await ByteStream.pattern(count: 2000).collect(limit: 1000)
        }
    }

    @Test("a lane runs blocking work off the cooperative pool, in order")
    func laneOrder() async throws {
        let lane = BlockingLane(label: "test")
        let log = Mutex<[Int]>([])
        for i in 0..<50 {
            try await lane.run { log.withLock { $0.append(i) } }
        }
        #expect(log.withLock { $0 } == Array(0..<50))

        // Sixteen blocking calls on their own lanes overlap: more at once than the
        // cooperative pool has threads (one per core), so none of them sits on it.
        let running = Overlap()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    _ = try await BlockingLane.detached {
                        running.enter()
                        usleep(300_000)
                        running.leave()
                        return 0
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(running.most > ProcessInfo.processInfo.activeProcessorCount)
    }
}

/// Counts how many callers are inside at once, and the most there ever were.
final class Overlap: Sendable {
    private let state = Mutex((now: 0, most: 0))
    func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var most: Int { state.withLock { $0.most } }
}

import Foundation
