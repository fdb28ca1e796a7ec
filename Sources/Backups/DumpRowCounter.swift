import DatabaseJobs
import Foundation
/// Counts the rows of every table in a pg_dump custom-format archive as it streams past,
/// so that a backup's manifest gets exact row counts without reading the database twice.
///
/// The archive (pg_backup_archiver.c, pg_backup_custom.c) is a header, a table of contents
/// (one entry per object: dump id, tag, description, schema, …) and then data blocks, each
/// naming its entry's dump id. With `--compress=0` a TABLE DATA block is the table's
/// `COPY … TO STDOUT` text in length-prefixed chunks, one row per line (a newline inside a
/// value is escaped as `\n`), ending with a `\.` line. Rows are the lines before it.
///
/// Archive versions 1.12 to 1.16 (pg_dump 9.0 to 17) are read. Anything unexpected (another
/// version, a compressed archive, a malformed or truncated stream) stops the counting with
/// a reason instead of guessing: the caller then counts in SQL, in the same snapshot.
///
/// Not thread-safe: one owner feeds it in order (the dump pipeline's lane).
final class DumpRowCounter {
    /// Why counting stopped, if it did.
    private(set) var failure: String?

    private var version = 0
    private var intSize = 4
    private var offSize = 8
    private var phase: Phase = .magic
    /// The bytes of the token being read, when it straddles two pieces of input.
    private var pending: [UInt8] = []
    /// TABLE DATA entries: dump id → (schema, table).
    private var tableData: [Int: (schema: String, name: String)] = [:]
    private var rowsByDumpID: [Int: Int64] = [:]
    /// The entry being read from the table of contents.
    private var entry = Entry()
    private var tocRemaining = 0
    private var fieldIndex = 0
    private var fields: [Field] = []
    /// The data block being read.
    private var block = Block()
    private var finished = false

    private enum Phase {
        case magic, version, sizes, compression, timestamp(Int), headerString(Int), tocCount
        case tocField
        case stringBody(remaining: Int, capture: Bool)
        case blockType
        case blockID(type: UInt8)
        case chunkLength
        case chunkData(remaining: Int)
        case blobOID
    }

    private enum Field { case int, string, captureTag, captureDesc, captureNamespace, dependencies, offset }

    private struct Entry {
        var dumpID = 0
        var tag = ""
        var desc = ""
        var namespace = ""
    }

    private struct Block {
        var dumpID = 0
        var isBlobs = false
        var counting = false
        var newlines: Int64 = 0
        var bytes: Int64 = 0
        /// The last seven bytes of the block's data (the newest lowest), to find the `\.`
        /// end-of-data line.
        var tail: UInt64 = 0
    }

    private var capturing: [UInt8] = []

    /// Row counts by schema and table, once the whole archive has been read; nil (with
    /// `failure` set) if it could not be.
    var rows: [TableKey: Int64]? {
        guard finished, failure == nil else { return nil }
        var out: [TableKey: Int64] = [:]
        for (id, table) in tableData { out[TableKey(schema: table.schema, name: table.name), default: 0] += rowsByDumpID[id] ?? 0 }
        return out
    }

    struct TableKey: Hashable {
        var schema: String
        var name: String
    }

    /// Reads the next piece of the archive (any size, any boundary).
    func scan(_ input: UnsafeRawBufferPointer) {
        guard failure == nil, !finished, let base = input.baseAddress else { return }
        var i = 0
        let n = input.count
        while i < n && failure == nil {
            switch phase {
            case .chunkData(let remaining):
                let take = min(remaining, n - i)
                if block.counting {
                    let piece = UnsafeRawBufferPointer(start: base + i, count: take)
                    block.newlines += Int64(Self.countNewlines(piece))
                    block.bytes += Int64(take)
                    for byte in piece.suffix(7) { block.tail = block.tail << 8 | UInt64(byte) }
                }
                i += take
                phase = remaining == take ? .chunkLength : .chunkData(remaining: remaining - take)
            case .stringBody(let remaining, let capture):
                let take = min(remaining, n - i)
                if capture && capturing.count < 4096 {
                    capturing.append(contentsOf: UnsafeRawBufferPointer(start: base + i, count: min(take, 4096 - capturing.count)))
                }
                i += take
                if remaining == take {
                    if let next = stringReturn {
                        phase = next  // a header string: nothing kept
                    } else {
                        phase = .tocField
                        stringDone(String(decoding: capturing, as: UTF8.self))
                    }
                } else {
                    phase = .stringBody(remaining: remaining - take, capture: capture)
                }
            default:
                let size = tokenSize()
                let have = pending.count
                if have == 0 && n - i >= size {
                    token(UnsafeRawBufferPointer(start: base + i, count: size))
                    i += size
                } else {
                    let take = min(size - have, n - i)
                    pending.append(contentsOf: UnsafeRawBufferPointer(start: base + i, count: take))
                    i += take
                    if pending.count == size {
                        let bytes = pending
                        pending.removeAll(keepingCapacity: true)
                        bytes.withUnsafeBytes { token($0) }
                    }
                }
            }
        }
    }

    /// The end of the archive: complete only between data blocks.
    func finish() {
        guard failure == nil, !finished else { return }
        if case .blockType = phase, pending.isEmpty {
            finished = true
        } else {
            fail("the archive ended in the middle (\(phase))")
        }
    }

    // MARK: - Tokens

    private func tokenSize() -> Int {
        switch phase {
        case .magic: 5
        case .version, .sizes: 3
        case .compression: version >= Self.v1_15 ? 1 : 1 + intSize
        case .blockType: 1
        case .tocField:
            switch fields[fieldIndex] {
            case .offset: 1 + offSize
            default: 1 + intSize  // ints, and the length before a string
            }
        default: 1 + intSize
        }
    }

    private func int(_ bytes: UnsafeRawBufferPointer) -> Int {
        var value = 0
        for k in stride(from: bytes.count - 1, through: 1, by: -1) { value = value << 8 | Int(bytes[k]) }
        return bytes[0] == 0 ? value : -value
    }

    private static let v1_12 = 0x01_0C_00, v1_14 = 0x01_0E_00, v1_15 = 0x01_0F_00, v1_16 = 0x01_10_00, vMax = 0x01_10_FF

    private func token(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .magic:
            guard Array(bytes) == Array("PGDMP".utf8) else { return fail("not a pg_dump custom-format archive") }
            phase = .version
        case .version:
            version = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
            guard version >= Self.v1_12 && version <= Self.vMax else {
                return fail("archive version \(bytes[0]).\(bytes[1]) is not one this reader knows (1.12 to 1.16)")
            }
            phase = .sizes
        case .sizes:
            intSize = Int(bytes[0])
            offSize = Int(bytes[1])
            guard (1...8).contains(intSize), (1...8).contains(offSize) else { return fail("integer size \(intSize) / offset size \(offSize) out of range") }
            guard bytes[2] == 1 else { return fail("archive format \(bytes[2]) is not custom (1)") }
            phase = .compression
        case .compression:
            let compression = version >= Self.v1_15 ? Int(bytes[0]) : int(bytes)
            guard compression == 0 else { return fail("the archive is compressed; rows are counted only in uncompressed archives") }
            phase = .timestamp(7)
        case .timestamp(let left):
            phase = left > 1 ? .timestamp(left - 1) : .headerString(3)
        case .headerString(let left):
            let length = int(bytes)
            let next: Phase = left > 1 ? .headerString(left - 1) : .tocCount
            if length > 0 {
                phase = .stringBody(remaining: length, capture: false)
                stringReturn = next
            } else {
                phase = next
            }
        case .tocCount:
            tocRemaining = int(bytes)
            guard tocRemaining >= 0 else { return fail("negative table-of-contents size") }
            fields = Self.entryFields(version: version)
            stringReturn = nil
            startEntry()
        case .tocField:
            tocField(bytes)
        case .blockType:
            switch bytes[0] {
            case 1: phase = .blockID(type: 1)
            case 3: phase = .blockID(type: 3)
            default: fail("unknown data block type \(bytes[0])")
            }
        case .blockID(let type):
            let id = int(bytes)
            block = Block(dumpID: id, isBlobs: type == 3, counting: type == 1 && tableData[id] != nil)
            phase = type == 3 ? .blobOID : .chunkLength
        case .chunkLength:
            let length = int(bytes)
            if length < 0 { return fail("negative data chunk length") }
            if length > 0 {
                phase = .chunkData(remaining: length)
            } else if block.isBlobs {
                phase = .blobOID
            } else {
                endDataBlock()
                phase = .blockType
            }
        case .blobOID:
            phase = int(bytes) == 0 ? .blockType : .chunkLength
        case .chunkData, .stringBody:
            break
        }
    }

    /// Where a header string's body leads (nil in the table of contents, whose strings
    /// go to `stringDone`).
    private var stringReturn: Phase?

    private static func entryFields(version: Int) -> [Field] {
        var f: [Field] = [.int, .int, .string, .string, .captureTag, .captureDesc, .int, .string, .string, .string, .captureNamespace, .string]
        if version >= v1_14 { f.append(.string) }  // table access method
        if version >= v1_16 { f.append(.int) }  // relkind
        f += [.string, .string, .dependencies, .offset]  // owner, "false" (WITH OIDS), dependencies, data position
        return f
    }

    private func startEntry() {
        if tocRemaining == 0 {
            phase = .blockType
            return
        }
        tocRemaining -= 1
        entry = Entry()
        fieldIndex = 0
        phase = .tocField
    }

    private func tocField(_ bytes: UnsafeRawBufferPointer) {
        let field = fields[fieldIndex]
        switch field {
        case .int:
            if fieldIndex == 0 { entry.dumpID = int(bytes) }
            nextField()
        case .offset:
            nextField()
        case .string, .captureTag, .captureDesc, .captureNamespace, .dependencies:
            let length = int(bytes)
            if field == .dependencies && length < 0 { return nextField() }  // the list's end
            guard length > 0 else {
                stringDone("")
                return
            }
            capturing.removeAll(keepingCapacity: true)
            phase = .stringBody(remaining: length, capture: field != .string && field != .dependencies)
        }
    }

    private func stringDone(_ text: String) {
        let field = fields[fieldIndex]
        switch field {
        case .captureTag: entry.tag = text
        case .captureDesc: entry.desc = text
        case .captureNamespace: entry.namespace = text
        case .dependencies: return  // another dependency follows, or the list's end
        default: break
        }
        nextField()
    }

    private func nextField() {
        fieldIndex += 1
        if fieldIndex == fields.count {
            if entry.desc == "TABLE DATA" { tableData[entry.dumpID] = (entry.namespace, entry.tag) }
            startEntry()
        } else {
            phase = .tocField
        }
    }

    private func endDataBlock() {
        guard block.counting else { return }
        // The data ends with a `\.` line (then blank lines, in some versions), which is not
        // a row: a row holding just `\.` would be escaped as `\\.`.
        var rows = block.newlines
        let kept = Int(min(block.bytes, 7))
        let tail = (0..<kept).reversed().map { UInt8(truncatingIfNeeded: block.tail >> (8 * UInt64($0))) }
        /// The data ends with `suffix` and it starts a line.
        func ends(_ suffix: String) -> Bool {
            let s = Array(suffix.utf8)
            guard tail.count >= s.count, Array(tail.suffix(s.count)) == s else { return false }
            return block.bytes == Int64(s.count) || (tail.count > s.count && tail[tail.count - s.count - 1] == 0x0A)
        }
        if ends("\\.\n\n\n") { rows -= 3 } else if ends("\\.\n") { rows -= 1 }
        rowsByDumpID[block.dumpID, default: 0] += rows
    }

    private func fail(_ reason: String) {
        if failure == nil { failure = reason }
    }

    /// Newline bytes in `bytes`.
    static func countNewlines(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        // Per 4 KiB: libc's vectorised memchr while lines are long (a dump's rows usually
        // are: four times faster than 8-byte words here), the word count for the rest of a
        // block once 32 newlines show it is dense.
        var count = 0
        var start = 0
        while start < bytes.count {
            let stop = base + min(bytes.count, start + 4096)
            var p = base + start
            var hits = 0
            while hits < 32, p < stop, let hit = memchr(p, 0x0A, stop - p) {
                hits += 1
                p = UnsafeRawPointer(hit) + 1
            }
            count += hits
            if hits == 32 && p < stop { count += countNewlinesByWords(UnsafeRawBufferPointer(start: p, count: stop - p)) }
            start += 4096
        }
        return count
    }

    /// Newline bytes counted eight at a time: a byte equal to 0x0A becomes zero after the
    /// XOR, and the expression below sets the top bit of exactly the zero bytes.
    static func countNewlinesByWords(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let n = bytes.count
        var count = 0
        var i = 0
        while i + 8 <= n {
            let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x0A0A_0A0A_0A0A_0A0A
            let zero = ~(((w & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | w | 0x7F7F_7F7F_7F7F_7F7F)
            count += zero.nonzeroBitCount
            i += 8
        }
        while i < n {
            if base.load(fromByteOffset: i, as: UInt8.self) == 0x0A { count += 1 }
            i += 1
        }
        return count
    }
}
