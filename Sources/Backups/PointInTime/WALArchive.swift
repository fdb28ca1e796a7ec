import Codecs
import Crypto
import DatabaseJobs
import Foundation
import ObjectStorage
import Queue

/// A file PostgreSQL archives: a WAL segment (`000000010000000A000000FF`), a timeline
/// history (`00000002.history`), a backup history file
/// (`000000010000000000000003.00000028.backup`) or a partial segment (`….partial`).
public struct WALFileName: Sendable, Equatable, Comparable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case segment, history, backup, partial }
    public var name: String
    public var kind: Kind

    /// Nil for anything PostgreSQL does not archive (a path, a stray file).
    public init?(_ name: String) {
        func hex(_ s: Substring, _ count: Int) -> Bool { s.count == count && s.allSatisfy { $0.isHexDigit && !$0.isLowercase } }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 1, hex(parts[0], 24) { kind = .segment }
        else if parts.count == 2, parts[1] == "history", hex(parts[0], 8) { kind = .history }
        else if parts.count == 2, parts[1] == "partial", hex(parts[0], 24) { kind = .partial }
        else if parts.count == 3, parts[2] == "backup", hex(parts[0], 24), hex(parts[1], 8) { kind = .backup }
        else { return nil }
        self.name = name
    }

    public var description: String { name }
    public static func < (a: WALFileName, b: WALFileName) -> Bool { a.name < b.name }

    /// The timeline (the first eight hex digits).
    public var timeline: UInt32 { UInt32(name.prefix(8), radix: 16) ?? 0 }

    /// For a segment (or partial or backup file): its position on its timeline, in
    /// segments of `segmentBytes` (16 MiB unless initdb chose another size).
    public func segmentNumber(segmentBytes: UInt64 = 16 << 20) -> UInt64? {
        guard kind != .history else { return nil }
        let chars = Array(name.prefix(24))
        guard let log = UInt64(String(chars[8..<16]), radix: 16), let seg = UInt64(String(chars[16..<24]), radix: 16) else { return nil }
        return log * (0x1_0000_0000 / segmentBytes) + seg
    }

    /// The segment at `number` on `timeline`.
    public static func segment(timeline: UInt32, number: UInt64, segmentBytes: UInt64 = 16 << 20) -> WALFileName {
        let perLog = 0x1_0000_0000 / segmentBytes
        return WALFileName(String(format: "%08X%08X%08X", timeline, UInt32(number / perLog), UInt32(number % perLog)))!
    }

    /// The folder its object lives in: segments by their first sixteen digits (timeline and
    /// log: 256 segments, 4 GiB of WAL, per folder), history and backup files apart.
    var folder: String {
        switch kind {
        case .history: "history"
        default: String(name.prefix(16))
        }
    }
}

/// The archive of one database's WAL in a store: `wal/<database>/<folder>/<name>-<sha256>.zst`,
/// where the SHA-256 is the file's own (before compression). The name says what the
/// content must be: a push of a file already stored with the same digest succeeds at
/// once, one with another digest is refused and never overwrites; a fetch checks the
/// digest of what it decompressed before PostgreSQL sees a byte of it.
public struct WALArchive: Sendable {
    public static let root = "wal"
    public let store: any ObjectStore
    public let database: String
    public let level: Int

    public init(store: any ObjectStore, database: String, level: Int = 3) {
        self.store = store
        self.database = database
        self.level = level
    }

    public var prefix: String { "\(Self.root)/\(database)/" }

    func key(_ file: WALFileName, sha256: String) -> String { "\(prefix)\(file.folder)/\(file.name)-\(sha256).zst" }

    /// What a stored object's key says: the file and its digest.
    public struct Stored: Sendable, Equatable {
        public var file: WALFileName
        public var sha256: String
        public var key: String
        public var size: Int64
        public var modified: Date?
    }

    static func parse(_ info: ObjectInfo) -> Stored? {
        guard let last = info.key.split(separator: "/").last, last.hasSuffix(".zst") else { return nil }
        let body = last.dropLast(4)
        guard let dash = body.lastIndex(of: "-") else { return nil }
        let digest = String(body[body.index(after: dash)...])
        guard digest.count == 64, let file = WALFileName(String(body[..<dash])) else { return nil }
        return Stored(file: file, sha256: digest, key: info.key, size: info.size, modified: info.lastModified)
    }

    /// The stored object of `file`, if any (more than one: the archive is damaged, named).
    public func find(_ file: WALFileName) async throws -> Stored? {
        let found = try await store.list(prefix: "\(prefix)\(file.folder)/\(file.name)-").compactMap(Self.parse).filter { $0.file == file }
        guard found.count <= 1 else {
            throw JobError.permanent("the WAL archive holds \(found.count) objects for \(file.name) (\(found.map(\.key).joined(separator: ", "))): remove the ones that are not the server's")
        }
        return found.first
    }

    public enum PushOutcome: String, Sendable { case stored, alreadyStored = "already stored" }

    /// Stores one file's bytes (compressed, named by their digest). Returns once the store
    /// has it; refuses a file whose name is stored with other content.
    public func push(_ file: WALFileName, bytes: [UInt8]) async throws -> PushOutcome {
        let digest = SigV4Signer.hex(SHA256.hash(data: bytes))
        if let existing = try await find(file) {
            guard existing.sha256 == digest else {
                throw JobError.permanent("WAL file \(file.name) is already archived with other content (SHA-256 \(existing.sha256.prefix(16))…, this one \(digest.prefix(16))…): two servers archive into \(store.url)/\(prefix)? Nothing was overwritten")
            }
            return .alreadyStored
        }
        let compressor = try Compressor(codec: .zstd, level: level)
        let packed = try compressor.compress(bytes) + compressor.finish()
        _ = try await store.put(key(file, sha256: digest), bytes: packed)
        return .stored
    }

    /// The file's bytes, decompressed and checked against the digest its name carries;
    /// nil when the archive has no such file.
    public func fetch(_ file: WALFileName) async throws -> [UInt8]? {
        guard let stored = try await find(file) else { return nil }
        let packed = try await store.getBytes(stored.key, limit: 1 << 30)
        var bytes: [UInt8] = []
        let decompressor = try Decompressor(codec: .zstd)
        do {
            try decompressor.decompress(packed) { bytes.append(contentsOf: $0) }
            try decompressor.finish()
        } catch {
            throw JobError.permanent("WAL file \(file.name) in \(store.url)/\(stored.key) is corrupt: \(error); restore it from another copy or take a new base backup")
        }
        let digest = SigV4Signer.hex(SHA256.hash(data: bytes))
        guard digest == stored.sha256 else {
            throw JobError.permanent("WAL file \(file.name) in \(store.url)/\(stored.key) is corrupt: its content has SHA-256 \(digest.prefix(16))…, its name says \(stored.sha256.prefix(16))…; restore it from another copy or take a new base backup")
        }
        return bytes
    }

    /// Every archived file, in name order.
    public func list() async throws -> [Stored] {
        try await store.list(prefix: prefix).compactMap(Self.parse).sorted { $0.file < $1.file }
    }

    /// Deletes every segment (and backup and partial file) whose position is before
    /// `oldest`'s, on every timeline: a restore from a base backup starting at `oldest`
    /// never reads an earlier position. History files stay (they are tiny, and a restore
    /// across timelines reads them). Returns the keys deleted.
    public func remove(before oldest: WALFileName, segmentBytes: UInt64 = 16 << 20) async throws -> [String] {
        guard let limit = oldest.segmentNumber(segmentBytes: segmentBytes) else { return [] }
        var deleted: [String] = []
        for stored in try await list() where stored.file.kind != .history {
            guard let n = stored.file.segmentNumber(segmentBytes: segmentBytes), n < limit else { continue }
            try await store.delete(stored.key)
            deleted.append(stored.key)
        }
        return deleted
    }
}

/// What the archive holds, read from a listing (pure): per timeline the first and last
/// segment and every gap between them.
public struct WALArchiveSummary: Sendable, Equatable, Codable {
    public struct Timeline: Sendable, Equatable, Codable {
        public var timeline: UInt32
        public var first: String
        public var last: String
        public var segments: Int
        /// Missing runs, as `first..last` segment names: a restore cannot pass them.
        public var gaps: [String]
    }
    public var timelines: [Timeline]
    public var histories: [String]
    public var lastArchivedAt: Date?
    public var objects: Int
    public var bytes: Int64

    public init(_ stored: [WALArchive.Stored], segmentBytes: UInt64 = 16 << 20) {
        var byTimeline: [UInt32: [UInt64]] = [:]
        for s in stored where s.file.kind == .segment {
            if let n = s.file.segmentNumber(segmentBytes: segmentBytes) { byTimeline[s.file.timeline, default: []].append(n) }
        }
        timelines = byTimeline.keys.sorted().map { tli in
            let numbers = Array(Set(byTimeline[tli]!)).sorted()
            var gaps: [String] = []
            for (a, b) in zip(numbers, numbers.dropFirst()) where b > a + 1 {
                let from = WALFileName.segment(timeline: tli, number: a + 1, segmentBytes: segmentBytes).name
                let to = WALFileName.segment(timeline: tli, number: b - 1, segmentBytes: segmentBytes).name
                gaps.append(from == to ? from : "\(from)..\(to)")
            }
            return Timeline(timeline: tli, first: WALFileName.segment(timeline: tli, number: numbers.first!, segmentBytes: segmentBytes).name,
                            last: WALFileName.segment(timeline: tli, number: numbers.last!, segmentBytes: segmentBytes).name,
                            segments: numbers.count, gaps: gaps)
        }
        histories = stored.filter { $0.file.kind == .history }.map(\.file.name).sorted()
        lastArchivedAt = stored.compactMap(\.modified).max()
        objects = stored.count
        bytes = stored.reduce(0) { $0 + $1.size }
    }
}
