import Crypto
import DBQSupport
import Synchronization

/// One object of a stream written as several (see `SegmentedWrite`).
public struct SegmentInfo: Sendable, Equatable {
    public var key: String
    public var size: Int64
    /// SHA-256 of the object's bytes, lower-case hex.
    public var sha256: String
}

/// Writes one stream of unknown length as consecutive objects of at most `limit` bytes:
/// `key`, `key.1`, `key.2`, … A reader concatenates them in that order.
///
/// Why: an S3 multipart upload of unknown length must grow its parts past 1,000 parts to
/// reach 5 TiB within S3's 10,000, and memory grows with them. Cut into objects of at most
/// 1,000 parts each, an upload of any size holds the same two parts.
public enum SegmentedWrite {
    /// The key of segment `index` (0-based) of `key`.
    public static func key(_ key: String, segment index: Int) -> String {
        index == 0 ? key : "\(key).\(index)"
    }

    /// Writes `body` as segments of at most `limit` bytes each (the last may be shorter;
    /// an empty stream is one empty object). If a segment fails, the segments already
    /// written are deleted before the error is rethrown: nothing half-written stays.
    ///
    /// A segment is committed (S3: CompleteMultipartUpload and a HEAD check) while the
    /// next one streams, so the stream never waits on a commit but the last one's: on S3 a
    /// large upload's completion can take seconds, and the source (`pg_dump`, holding its
    /// snapshot) would stall for that long at every segment. At most one commit runs beside
    /// the stream, and it holds no part in memory.
    public static func put(_ store: any ObjectStore, key: String, from body: ByteStream, limit: Int64) async throws -> [SegmentInfo] {
        precondition(limit > 0, "a segment limit must be positive")
        let cutter = SegmentCutter(body)
        var written: [SegmentInfo] = []
        var committing: (task: Task<ObjectInfo, any Error>, segment: SegmentInfo)?
        /// Waits for the commit in flight and checks what it stored.
        func settle() async throws {
            guard let (task, segment) = committing else { return }
            committing = nil
            let info = try await task.value
            written.append(segment)
            guard info.size == segment.size else {
                throw ObjectStoreError(code: .integrity, message: "\(store.url)/\(segment.key) holds \(info.size) bytes after upload, \(segment.size) were sent",
                                       store: store.url, key: segment.key)
            }
        }
        do {
            var index = 0
            repeat {
                let segmentKey = Self.key(key, segment: index)
                let staged: StagedWrite
                do {
                    staged = try await store.stage(segmentKey, from: cutter.segment(limit: limit))
                } catch {
                    // The previous segment's commit may still run: let it end, so that
                    // its object (if it was made) is deleted below with the others.
                    try? await settle()
                    throw error
                }
                let (size, digest) = cutter.finishSegment()
                do {
                    try await settle()
                } catch {
                    await staged.discard()
                    throw error
                }
                committing = (Task { try await staged.commit() }, SegmentInfo(key: segmentKey, size: size, sha256: digest))
                index += 1
            } while try await cutter.hasMore()
            try await settle()
        } catch {
            if let (task, segment) = committing {
                // Failed between staging a segment and settling it (reading ahead, or a
                // cancellation): its commit is let run out, then its object deleted.
                _ = try? await task.value
                written.append(segment)
            }
            for segment in written { try? await store.delete(segment.key) }
            throw error
        }
        return written
    }
}

/// Cuts one stream into consecutive segments, hashing each. Used by one consumer at a time.
final class SegmentCutter: Sendable {
    // The iterator is taken out of the mutex for a pull and put back after it: sound because
    // `SegmentedWrite.put` reads one segment at a time, and a store pulls one chunk at a time.
    private struct State {
        var iterator: ByteStream.AsyncIterator
        var leftover: [UInt8] = []
        var ended = false
        var size: Int64 = 0
        var hasher = SHA256()
    }
    private let state: Mutex<State>

    init(_ body: ByteStream) {
        state = Mutex(State(iterator: body.makeAsyncIterator()))
    }

    /// The next segment's bytes: up to `limit`, ending early only where the stream ends.
    func segment(limit: Int64) -> ByteStream {
        ByteStream { [self] in
            let room = state.withLock { limit - $0.size }
            if room <= 0 { return nil }
            guard var chunk = try await nextChunk() else { return nil }
            if Int64(chunk.count) > room {
                let rest = Array(chunk[Int(room)...])
                chunk.removeSubrange(Int(room)...)
                state.withLock { $0.leftover = rest }
            }
            state.withLock { s in
                s.size += Int64(chunk.count)
                s.hasher.update(data: chunk)
            }
            return chunk
        }
    }

    /// The finished segment's size and SHA-256; the next segment starts from zero.
    func finishSegment() -> (Int64, String) {
        state.withLock { s in
            let result = (s.size, SigV4Signer.hex(s.hasher.finalize()))
            s.size = 0
            s.hasher = SHA256()
            return result
        }
    }

    /// Whether any byte is left for another segment (reads ahead one chunk to know).
    func hasMore() async throws -> Bool {
        if state.withLock({ !$0.leftover.isEmpty }) { return true }
        guard let chunk = try await pull() else { return false }
        state.withLock { $0.leftover = chunk }
        return true
    }

    private func nextChunk() async throws -> [UInt8]? {
        let leftover = state.withLock { s -> [UInt8]? in
            guard !s.leftover.isEmpty else { return nil }
            defer { s.leftover = [] }
            return s.leftover
        }
        if let leftover { return leftover }
        return try await pull()
    }

    private func pull() async throws -> [UInt8]? {
        if state.withLock({ $0.ended }) { return nil }
        var iterator = state.withLock { $0.iterator }
        let chunk = try await iterator.next()
        state.withLock { s in
            s.iterator = iterator
            if chunk == nil { s.ended = true }
        }
        return chunk
    }
}
