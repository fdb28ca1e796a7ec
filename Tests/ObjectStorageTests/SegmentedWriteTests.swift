import Crypto
import DBQSupport
import DBQTestSupport
import Foundation
@testable import ObjectStorage
import Synchronization
import Testing

@Suite("Segmented writes: one stream, several objects of bounded size")
struct SegmentedWriteTests {
    func bytes(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

    /// The stream in chunks of varying sizes, so cuts fall inside and between chunks.
    func stream(_ data: [UInt8], chunk: Int) -> ByteStream {
        var chunks: [[UInt8]] = []
        var i = 0, n = 0
        while i < data.count {
            let size = min(data.count - i, chunk + (n % 3) * 7)
            chunks.append(Array(data[i..<i + size]))
            i += size
            n += 1
        }
        return ByteStream.chunks(chunks)
    }

    @Test("cuts fall where the limit says; the objects concatenate to the stream; each hash is its own",
          arguments: [(10_000, 3_000, 4), (9_000, 3_000, 3), (2_999, 3_000, 1), (1, 1, 1), (5, 1, 5), (0, 100, 1)])
    func cuts(total: Int, limit: Int, expected: Int) async throws {
        let store = try LocalStore(root: TestServices.temporaryDirectory("dbq-segments"))
        let data = bytes(total)
        for chunk in [1, 700, 4096] {
            let key = "s/\(chunk)/dump"
            let segments = try await SegmentedWrite.put(store, key: key, from: stream(data, chunk: chunk), limit: Int64(limit))
            #expect(segments.count == expected, "chunk \(chunk)")
            #expect(segments.map(\.key) == (0..<segments.count).map { SegmentedWrite.key(key, segment: $0) })
            var whole: [UInt8] = []
            for segment in segments {
                let stored = try await store.getBytes(segment.key)
                #expect(Int64(stored.count) == segment.size)
                #expect(stored.count <= limit)
                #expect(SigV4Signer.hex(SHA256.hash(data: stored)) == segment.sha256)
                whole += stored
            }
            #expect(whole == data)
            #expect(try await store.list(prefix: "s/\(chunk)/").count == expected)
        }
    }

    @Test("a stream that fails in a later segment leaves no object behind")
    func failureCleansUp() async throws {
        let store = try LocalStore(root: TestServices.temporaryDirectory("dbq-segments"))
        struct Broken: Error {}
        let sent = Counter()
        let body = ByteStream {
            if sent.next() > 5 { throw Broken() }
            return [UInt8](repeating: 7, count: 1000)
        }
        await #expect(throws: Broken.self) {
            _ = try await SegmentedWrite.put(store, key: "f/dump", from: body, limit: 1500)
        }
        #expect(try await store.list(prefix: "f/").isEmpty)
    }
}

final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
}
