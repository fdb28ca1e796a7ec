import CDBQSystem
import Crypto
import DBQSupport
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Parts of a multipart upload waiting for an upload slot, kept in an unlinked file
/// instead of memory: while S3 is the slower, the source (a `pg_dump` holding its
/// snapshot open) runs on at its own speed, and memory stays `partConcurrency + 1` parts.
///
/// The file is made with `mkstemp` and unlinked at once, so nothing is left behind however
/// the process ends (even SIGKILL). Each part's bytes are hashed as they are written and
/// again when read back: a disk that returned other bytes fails the upload (integrity)
/// instead of storing them. Uploaded parts are punched out of the file
/// (`FALLOCATE_PUNCH_HOLE`), so the disk holds only what still waits, at most `limit`
/// bytes; past that the source waits, as it would without a spool.
final class PartSpool: Sendable {
    struct Entry: Sendable {
        var number: Int
        var offset: Int64
        var length: Int
        /// SHA-256 of the bytes as written.
        var digest: [UInt8]
    }

    private struct State {
        var fd: Int32 = -1
        /// Set when the spool could not be made or written: nothing more is spooled.
        var broken: String?
        var end: Int64 = 0
        /// Bytes written and not yet uploaded (reserved included).
        var outstanding: Int64 = 0
        var queue: [Entry] = []
        /// Upload tasks running (each holds one part in memory).
        var uploaders = 0
    }

    let limit: Int64
    let directory: String
    private let state = Mutex(State())
    private let lane = BlockingLane(label: "dbq.spool")

    init(limit: Int64, directory: String) {
        self.limit = limit
        self.directory = directory
    }

    deinit {
        let fd = state.withLock { $0.fd }
        if fd >= 0 { close(fd) }
    }

    /// What the writer does with a part it has just cut.
    enum Placement: Equatable { case upload, spool(offset: Int64), wait }

    /// Decides for a part of `length` bytes: an upload slot if one of `slots` is free, else
    /// room in the spool, else wait. A slot or room taken here is held until released.
    func place(length: Int, slots: Int) -> Placement {
        state.withLock { s in
            if s.uploaders < slots {
                s.uploaders += 1
                return .upload
            }
            guard limit > 0, s.broken == nil, s.outstanding + Int64(length) <= limit else { return .wait }
            let offset = s.end
            s.end += Int64(length)
            s.outstanding += Int64(length)
            return .spool(offset: offset)
        }
    }

    /// Writes a part at the offset `place` gave; true once it is queued for an upload.
    /// False if the disk refused it (full, read-only): the caller then waits for a slot and
    /// uploads it from memory, and nothing more is spooled.
    func write(_ part: [UInt8], number: Int, offset: Int64) async -> Bool {
        let written: Result<[UInt8], SpoolFailure> = await lane.run { [self] in
            do throws(SpoolFailure) {
                let fd = try openIfNeeded()
                let error: Int32 = part.withUnsafeBytes { bytes in
                    var done = 0
                    while done < bytes.count {
                        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                        if n < 0 {
                            if errno == EINTR { continue }
                            return errno
                        }
                        done += n
                    }
                    return 0
                }
                if error != 0 {
                    throw SpoolFailure("cannot write to the upload spool in \(directory): \(String(cString: strerror(error)))")
                }
                return .success(Array(SHA256.hash(data: part)))
            } catch {
                return .failure(error)
            }
        }
        return state.withLock { s in
            switch written {
            case .success(let digest):
                s.queue.append(Entry(number: number, offset: offset, length: part.count, digest: digest))
                return true
            case .failure(let failure):
                s.outstanding -= Int64(part.count)
                s.broken = failure.message
                return false
            }
        }
    }

    /// Why the spool stopped taking parts, for the log (nil while it works).
    var failure: String? { state.withLock { $0.broken } }

    /// For an upload task that finished its part: the next spooled part (the slot stays
    /// held), or nil with the slot released.
    func next() -> Entry? {
        state.withLock { s in
            if s.queue.isEmpty {
                s.uploaders -= 1
                return nil
            }
            return s.queue.removeFirst()
        }
    }

    /// A free slot for a spooled part no task is left to take (a task ended just before it
    /// was queued): true if the caller should start one; the slot is then held.
    func claimIdleSlot(slots: Int) -> Bool {
        state.withLock { s in
            guard !s.queue.isEmpty, s.uploaders < slots else { return false }
            s.uploaders += 1
            return true
        }
    }

    /// A slot given back without uploading (the writer took one, then failed).
    func releaseSlot() { state.withLock { $0.uploaders -= 1 } }

    /// The bytes of a spooled part, checked against the hash taken when it was written; its
    /// room in the file is given back.
    func read(_ entry: Entry) async throws -> [UInt8] {
        let fd = state.withLock { $0.fd }
        let bytes: [UInt8] = try await lane.run { [directory] in
            var out = [UInt8](repeating: 0, count: entry.length)
            try out.withUnsafeMutableBytes { buffer in
                var done = 0
                while done < buffer.count {
                    let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(entry.offset) + off_t(done))
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else {
                        throw ObjectStoreError(code: .integrity, message: "cannot read part \(entry.number) back from the upload spool in \(directory): \(n < 0 ? String(cString: strerror(errno)) : "it is shorter than written")")
                    }
                    done += n
                }
            }
            // The disk space goes back now (a file system without hole punching keeps it until close).
            _ = CSystem_punch_hole(fd, entry.offset, Int64(entry.length))
            return out
        }
        state.withLock { $0.outstanding -= Int64(entry.length) }
        guard Array(SHA256.hash(data: bytes)) == entry.digest else {
            throw ObjectStoreError(code: .integrity, message: "part \(entry.number) read back from the upload spool in \(directory) differs from what was written (a failing disk?); the upload is aborted and retried")
        }
        return bytes
    }

    private func openIfNeeded() throws(SpoolFailure) -> Int32 {
        let current = state.withLock { $0.fd }
        if current >= 0 { return current }
        var template = Array("\(directory)/dbq-spool-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { CSystem_mkstemp_cloexec($0.baseAddress!) }
        guard fd >= 0 else {
            throw SpoolFailure("cannot make an upload spool in \(directory): \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        state.withLock { $0.fd = fd }
        return fd
    }

    struct SpoolFailure: Error { var message: String; init(_ m: String) { message = m } }
}
