import Codecs
import Crypto
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue
import Synchronization

/// `pg_dump`'s output as a stream of compressed chunks, rows counted as they pass (the
/// objects they land in are hashed by `SegmentedWrite`).
///
/// Each pull takes the next 256 KiB read ahead from the pipe and compresses it in one hop
/// onto the pipeline's lane: the cooperative pool never blocks on the pipe or the
/// codec, and memory is one chunk whatever the database's size. At the end of the output
/// the child's exit status is checked before the stream ends, so a failed `pg_dump`
/// fails the upload (which is then aborted) instead of completing a truncated one.
final class DumpSource: @unchecked Sendable {
    // @unchecked Sendable: the mutable state is touched only on `lane` (serial), one pull at a time.
    let lane = BlockingLane(label: "dbq.dump")
    let process: Subprocess
    private let compressor: Compressor
    private let reader: PipeReader
    private(set) var rawBytes: Int64 = 0
    private(set) var storedBytes: Int64 = 0
    private var ended = false
    /// Rows per table, read from the archive as it passes (see `DumpRowCounter`).
    let rowCounter = DumpRowCounter()

    /// The tool's name for messages (`pg_dump`, `pg_basebackup`).
    let tool: String
    /// Sees every raw chunk as it passes (a base backup's tar members), instead of the
    /// row counter.
    let tap: TarMembers?

    init(process: Subprocess, compressor: Compressor, tool: String = "pg_dump", tap: TarMembers? = nil) {
        self.process = process
        self.compressor = compressor
        self.tool = tool
        self.tap = tap
        reader = PipeReader(process: process, chunk: 256 << 10)
    }

    /// Stops the read-ahead (the output is abandoned).
    func stop() { reader.stop() }

    /// The stream; `progress` is called with (raw, stored) bytes after each chunk.
    func stream(progress: @escaping @Sendable (Int64, Int64) async -> Void) -> ByteStream {
        ByteStream { [self] in
            try Task.checkCancellation()
            let (chunk, raw, stored) = try await lane.run { () throws -> ([UInt8]?, Int64, Int64) in
                let chunk = try self.pull()
                return (chunk, self.rawBytes, self.storedBytes)
            }
            if chunk != nil { await progress(raw, stored) }
            return chunk
        }
    }

    private func pull() throws -> [UInt8]? {
        if ended { return nil }
        let piece = try reader.next()
        defer { reader.release() }
        let n = piece.count
        if let tap { tap.feed(piece) } else { rowCounter.scan(piece) }
        if n == 0 {
            if tap == nil { rowCounter.finish() }
            let status = process.waitBlocking()
            guard status == 0 else {
                throw JobError.retryable("\(tool) failed (exit \(status)): \(Self.lastLines(process.standardError))")
            }
            let tail = try compressor.finish()
            storedBytes += Int64(tail.count)
            ended = true
            return tail
        }
        rawBytes += Int64(n)
        let out = try compressor.compress(piece)
        storedBytes += Int64(out.count)
        return out
    }

    static func lastLines(_ text: String, count: Int = 6) -> String {
        let lines = text.split(separator: "\n").suffix(count)
        return lines.isEmpty ? "(no message)" : lines.joined(separator: " | ")
    }
}

/// Reads a child's output ahead on a thread of its own, into two buffers used in turn:
/// while one chunk is compressed, the next is read, so `pg_dump` never waits on dbq's
/// compression for longer than one chunk (the pipe alone holds 1 MiB).
final class PipeReader: @unchecked Sendable {
    // @unchecked Sendable: each buffer is written by the reader thread only while it holds
    // it (between `free.wait` and `filled.signal`) and read by the consumer only between
    // `filled.wait` and `release`; the semaphores order the two.
    private let buffers: [UnsafeMutableRawBufferPointer]
    private let free: DispatchSemaphore
    private let filled = DispatchSemaphore(value: 0)
    private let results = Mutex<[Result<Int, any Error>]>([])
    private let stopped = Mutex(false)
    private var consumed = 0

    init(process: Subprocess, chunk: Int, depth: Int = 2) {
        buffers = (0..<depth).map { _ in .allocate(byteCount: chunk, alignment: 16) }
        // Made at 0 and signalled up: libdispatch traps when a semaphore is freed below the
        // value it was made with, which a job cancelled mid-dump (its chunks never released)
        // would do — it killed the whole worker.
        free = DispatchSemaphore(value: 0)
        for _ in 0..<depth { free.signal() }
        Thread.detachNewThread { [self] in readAhead(process) }
    }

    /// The reader thread: fills the free buffers in turn until the output ends, fails, or `stop`.
    private func readAhead(_ process: Subprocess) {
        var index = 0
        while true {
            free.wait()
            if stopped.withLock({ $0 }) { return }
            let result = Result { try process.readStdout(into: buffers[index % buffers.count]) }
            results.withLock { $0.append(result) }
            filled.signal()
            index += 1
            guard case .success(let n) = result, n > 0 else { return }
        }
    }

    deinit { buffers.forEach { $0.deallocate() } }

    /// The next chunk (empty at the end of the output); valid until `release`. Blocks.
    func next() throws -> UnsafeRawBufferPointer {
        filled.wait()
        let result = results.withLock { $0.removeFirst() }
        let n = try result.get()
        return UnsafeRawBufferPointer(rebasing: buffers[consumed % buffers.count][0..<n])
    }

    /// The chunk `next` gave back is done with; its buffer may be filled again.
    func release() {
        consumed += 1
        free.signal()
    }

    /// Ends the read-ahead: the thread exits at its next turn (the caller kills the child
    /// or has read its output to the end).
    func stop() {
        stopped.withLock { $0 = true }
        free.signal()
    }
}

/// Feeds a stored backup into `pg_restore`, checking size and SHA-256 as it reads.
///
/// If `pg_restore` stops reading or the codec finds bad data, the rest of the object is
/// still read and hashed, so that a corrupt object is named as such rather than
/// reported as whatever `pg_restore` made of it.
final class RestoreSink: @unchecked Sendable {
    // @unchecked Sendable: state touched only on `lane`, one chunk at a time.
    let lane = BlockingLane(label: "dbq.restore")
    let process: Subprocess
    private let decompressor: Decompressor
    private var objectHasher = SHA256()
    private var objectBytes: Int64 = 0
    /// Bytes read over every object so far.
    private(set) var storedBytes: Int64 = 0
    private(set) var rawBytes: Int64 = 0
    private(set) var codecFailure: CodecError?
    private(set) var writeFailure: (any Error)?

    init(process: Subprocess, decompressor: Decompressor) {
        self.process = process
        self.decompressor = decompressor
    }

    /// The next data object starts: its size and digest are counted afresh.
    func beginObject() {
        objectHasher = SHA256()
        objectBytes = 0
    }

    func feed(_ chunk: [UInt8]) throws {
        objectHasher.update(data: chunk)
        objectBytes += Int64(chunk.count)
        storedBytes += Int64(chunk.count)
        guard codecFailure == nil && writeFailure == nil else { return }
        do {
            try decompressor.decompress(chunk) { piece in
                rawBytes += Int64(piece.count)
                do { try process.writeStdin(piece) } catch {
                    writeFailure = error
                    throw error
                }
            }
        } catch let error as CodecError {
            codecFailure = error
        } catch {
            // A write failure: recorded above; the stream is still read to the end.
        }
    }

    /// Ends one object: its size and digest against the manifest's.
    func finishObject(expected: ManifestObject, object: String) throws {
        let digest = objectHasher.finalize().hex
        if objectBytes != expected.size || digest != expected.sha256 {
            throw JobError.permanent(
                "backup object \(object) is corrupt: it holds \(objectBytes) bytes with SHA-256 \(digest.prefix(16))…, "
                    + "the manifest says \(expected.size) bytes with SHA-256 \(expected.sha256.prefix(16))…; nothing was restored from it")
        }
    }

    /// Ends the input, after every object checked out: the codec's own verdict.
    func finish(object: String) throws {
        if let codecFailure {
            throw JobError.permanent("backup object \(object) is corrupt: \(codecFailure) (its checksum matches the manifest, so it was damaged before upload)")
        }
        if writeFailure == nil {
            do {
                try decompressor.finish()
            } catch {
                throw JobError.permanent("backup object \(object) is corrupt: \(error)")
            }
        }
    }
}

extension Digest {
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The tables whose rows a backup counts and a verification compares.
enum TableInventory {
    static let listSQL = """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1, 2
        """

    /// Every table with its exact row count, in the connection's current snapshot.
    static func count(_ connection: PostgresConnection) async throws -> [TableRows] {
        var tables: [TableRows] = []
        for table in try await list(connection) {
            tables.append(TableRows(schema: table.schema, name: table.name, rows: try await count(connection, table)))
        }
        return tables
    }

    /// Every table (schema, name), in the connection's current snapshot: a catalog query.
    static func list(_ connection: PostgresConnection) async throws -> [DumpRowCounter.TableKey] {
        try await connection.query(listSQL).compactMap { row in
            guard let schema = row[0], let name = row[1] else { return nil }
            return DumpRowCounter.TableKey(schema: schema, name: name)
        }
    }

    /// One table's exact row count (a full scan).
    static func count(_ connection: PostgresConnection, _ table: DumpRowCounter.TableKey) async throws -> Int64 {
        try await connection.query("SELECT count(*) FROM ONLY \(try PostgresIdentifier.qualified(schema: table.schema, name: table.name))")
            .scalar.flatMap { Int64($0) } ?? 0
    }

    /// What differs between the manifest's tables and the restored ones.
    static func compare(expected: [TableRows], actual: [TableRows]) -> [String] {
        let want = Dictionary(expected.map { ($0.qualifiedName, $0.rows) }, uniquingKeysWith: { a, _ in a })
        let got = Dictionary(actual.map { ($0.qualifiedName, $0.rows) }, uniquingKeysWith: { a, _ in a })
        var mismatches: [String] = []
        for name in want.keys.sorted() {
            guard let rows = got[name] else {
                mismatches.append("table \(name) is missing from the restore")
                continue
            }
            if rows != want[name]! { mismatches.append("table \(name) has \(rows) rows, the manifest says \(want[name]!)") }
        }
        for name in got.keys.sorted() where want[name] == nil {
            mismatches.append("table \(name) is in the restore but not in the manifest")
        }
        return mismatches
    }
}
