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

extension SegmentedWriteTests {
    @Test("a segment is committed while the next one streams, and a failed commit leaves nothing")
    func commitsOverlapTheStream() async throws {
        let local = try LocalStore(root: TestServices.temporaryDirectory("dbq-segments"))
        let store = OrderedStore(base: local, lastKey: "o/dump.3")
        let data = bytes(10_000)
        let segments = try await SegmentedWrite.put(store, key: "o/dump", from: stream(data, chunk: 500), limit: 3_000)
        #expect(segments.count == 4)
        // Each commit but the last waited for the next segment's first bytes to be read.
        #expect(store.events == [
            "stage o/dump", "stage o/dump.1", "commit o/dump after o/dump.1 streamed",
            "stage o/dump.2", "commit o/dump.1 after o/dump.2 streamed",
            "stage o/dump.3", "commit o/dump.2 after o/dump.3 streamed", "commit o/dump.3",
        ])
        var whole: [UInt8] = []
        for segment in segments { whole += try await local.getBytes(segment.key) }
        #expect(whole == data)

        // The third commit fails: the two segments already committed are deleted, the one
        // staged beside it is discarded, and the error is the commit's.
        let failing = OrderedStore(base: local, lastKey: "f/dump.3", failCommit: "f/dump.2")
        await #expect(throws: OrderedStore.Refused.self) {
            _ = try await SegmentedWrite.put(failing, key: "f/dump", from: stream(data, chunk: 500), limit: 3_000)
        }
        #expect(try await local.list(prefix: "f/").isEmpty)
        #expect(try await local.abandonedWrites(prefix: "f/", olderThan: 0, now: Date().addingTimeInterval(60)).isEmpty)
    }
}

/// A local store that logs stages and commits, and holds each commit but the last's
/// until the next segment has streamed its first bytes (or 10 s pass: then the log shows
/// it did not).
final class OrderedStore: ObjectStore {
    struct Refused: Error {}
    let base: LocalStore
    let lastKey: String
    let failCommit: String?
    private let log = Mutex<[String]>([])
    private let streaming = Mutex<Set<String>>([])
    var events: [String] { log.withLock { $0 } }
    var url: String { base.url }

    init(base: LocalStore, lastKey: String, failCommit: String? = nil) {
        self.base = base
        self.lastKey = lastKey
        self.failCommit = failCommit
    }

    func stage<S: AsyncSequence>(_ key: String, from body: S) async throws -> StagedWrite where S.Element == [UInt8] {
        log.withLock { $0.append("stage \(key)") }
        var iterator = body.makeAsyncIterator()
        var chunks: [[UInt8]] = []
        while let chunk = try await iterator.next() {
            chunks.append(chunk)
            streaming.withLock { _ = $0.insert(key) }
        }
        let staged = try await base.stage(key, from: ByteStream.chunks(chunks))
        let next = Self.nextKey(key)
        return StagedWrite(key: key, commit: { [self] in
            var waited = false
            for _ in 0..<(key == lastKey ? 0 : 1000) {
                if streaming.withLock({ $0.contains(next) }) { waited = true; break }
                try? await Task.sleep(for: .milliseconds(10))
            }
            log.withLock { $0.append("commit \(key)" + (waited ? " after \(next) streamed" : "")) }
            if key == failCommit {
                await staged.discard()
                throw Refused()
            }
            return try await staged.commit()
        }, discard: { await staged.discard() })
    }

    /// `k` → `k.1`, `k.N` → `k.N+1`.
    static func nextKey(_ key: String) -> String {
        if let dot = key.lastIndex(of: "."), let n = Int(key[key.index(after: dot)...]) { return "\(key[..<dot]).\(n + 1)" }
        return key + ".1"
    }

    func get(_ key: String) async throws -> ByteStream { try await base.get(key) }
    func head(_ key: String) async throws -> ObjectInfo? { try await base.head(key) }
    func list(prefix: String) async throws -> [ObjectInfo] { try await base.list(prefix: prefix) }
    func delete(_ key: String) async throws { try await base.delete(key) }
    func abandonedWrites(prefix: String, olderThan age: TimeInterval, now: Date) async throws -> [AbandonedWrite] {
        try await base.abandonedWrites(prefix: prefix, olderThan: age, now: now)
    }
    func discard(_ write: AbandonedWrite) async throws { try await base.discard(write) }
}

final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
}
