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
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                try await lane.run { log.withLock { $0.append(i) } }
            }
            // Blocking calls on many lanes at once do not starve each other.
            for _ in 0..<16 {
                group.addTask { _ = try await BlockingLane.detached { usleep(200_000); return 0 } }
            }
            try await group.waitForAll()
        }
        // Run one after another they would take 3.2 s; on their own threads, about 0.2 s.
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(log.withLock { $0 } == Array(0..<50))
    }
}

import Foundation
