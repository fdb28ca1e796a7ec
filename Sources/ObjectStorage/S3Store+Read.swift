import DBQSupport
import Synchronization

/// Reads an object as a sequence of ranged GETs, one range ahead of the consumer.
///
/// Each range is a separate request, retried on its own, so a reset connection costs one
/// range rather than the whole download; `If-Match` on the first range's ETag makes a
/// concurrent overwrite fail the read instead of splicing two versions. Memory: the range
/// being consumed and the one in flight.
final class RangeReader: Sendable {
    private struct State {
        var etag: String?
        var size: Int64 = 0
        /// The first byte not yet requested.
        var offset: Int64 = 0
        /// Ranges requested and not yet handed out, in order.
        var pending: [Task<[UInt8], any Error>] = []
    }

    private let store: S3Store
    private let key: String
    private let chunkSize: Int
    private let state = Mutex(State())

    init(store: S3Store, key: String, chunkSize: Int) {
        self.store = store
        self.key = key
        self.chunkSize = chunkSize
    }

    deinit {
        state.withLock { s in s.pending.forEach { $0.cancel() } }
    }

    /// Fetches the first range, learning the size and ETag (and failing early on a missing key).
    func start() async throws {
        let response = try await store.send("GET", key: key, headers: [("Range", "bytes=0-\(chunkSize - 1)")], expect: [200, 206, 416])
        guard response.status != 416 else { return }  // an empty object has no byte 0
        var total = Int64(response.body.count)
        if response.status == 206, let range = response.headers["content-range"], let slash = range.lastIndex(of: "/"),
           let parsed = Int64(range[range.index(after: slash)...]) {
            total = parsed
        }
        let body = response.body
        state.withLock { s in
            s.etag = response.headers["etag"]
            s.size = total
            s.offset = Int64(body.count)
            s.pending = [Task { body }]
        }
    }

    func next() async throws -> [UInt8]? {
        let head: Task<[UInt8], any Error>? = state.withLock { s in
            guard !s.pending.isEmpty else { return nil }
            let head = s.pending.removeFirst()
            scheduleNext(&s)
            return head
        }
        return try await head?.value
    }

    private func scheduleNext(_ s: inout State) {
        guard s.offset < s.size else { return }
        let start = s.offset
        let end = min(s.size, start + Int64(chunkSize)) - 1
        s.offset = end + 1
        var headers = [("Range", "bytes=\(start)-\(end)")]
        if let etag = s.etag { headers.append(("If-Match", etag)) }
        let store = self.store
        let key = self.key
        s.pending.append(Task {
            let response = try await store.send("GET", key: key, headers: headers, expect: [206])
            guard response.body.count == Int(end - start + 1) else {
                throw ObjectStoreError(
                    code: .integrity,
                    message: "S3 returned \(response.body.count) bytes for range \(start)-\(end) of \(store.url)/\(key)",
                    store: store.url, key: key)
            }
            return response.body
        })
    }
}
