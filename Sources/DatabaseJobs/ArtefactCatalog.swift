import Codecs
import Crypto
import DBQSupport
import Foundation
import ObjectStorage
import Queue

/// What every artefact family's manifest says about itself, so one catalog, one reader and
/// one retention serve exports and snapshots alike (backups keep their own catalog, which
/// also pairs verifications with manifests).
public protocol ArtefactManifest: Codable, Sendable {
    /// `export`, `snapshot`: for messages.
    static var family: String { get }
    /// `exports`, `snapshots`: the store's top folder of the family.
    static var root: String { get }
    var id: String { get }
    var database: String { get }
    var finishedAt: Date { get }
    var job: JobStamp { get }
}

/// The artefacts of one family in a store: only folders with a manifest count.
public struct ArtefactCatalog<Manifest: ArtefactManifest>: Sendable {
    public struct Entry: Sendable {
        public var folder: String
        public var manifest: Manifest
        public var id: String { manifest.id }
        public init(folder: String, manifest: Manifest) {
            self.folder = folder
            self.manifest = manifest
        }
    }
    /// Oldest first, by the manifest's recorded end.
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// `<root>/<database>/<id>`.
    public static func folder(database: String, id: String) -> String { "\(Manifest.root)/\(database)/\(id)" }

    public static func load(_ store: any ObjectStore, database: String? = nil) async throws -> ArtefactCatalog {
        var entries: [Entry] = []
        let prefix = Manifest.root + "/" + (database.map { $0 + "/" } ?? "")
        for info in try await store.list(prefix: prefix) where info.key.hasSuffix("/" + ArtefactLayout.manifestName) {
            let bytes = try await store.getBytes(info.key)
            guard let manifest = try? ManifestCoding.decoder.decode(Manifest.self, from: Data(bytes)) else { continue }
            entries.append(Entry(folder: String(info.key.dropLast(ArtefactLayout.manifestName.count + 1)), manifest: manifest))
        }
        return ArtefactCatalog(entries: entries.sorted { ($0.manifest.finishedAt, $0.id) < ($1.manifest.finishedAt, $1.id) })
    }

    /// `latest` (of `database` if given), a whole id, a job id, or an unambiguous prefix.
    public func find(_ reference: String, database: String? = nil) throws -> Entry {
        let family = Manifest.family
        let candidates = entries.filter { database == nil || $0.manifest.database == database }
        if reference == "latest" {
            guard let last = candidates.last else {
                throw JobError.permanent("no \(family)" + (database.map { " of database '\($0)'" } ?? "") + " in this storage")
            }
            return last
        }
        let matches = candidates.filter { $0.id == reference || $0.manifest.job.id == reference || $0.id.hasPrefix(reference) }
        guard matches.count == 1, let entry = matches.first else {
            throw JobError.permanent(matches.isEmpty
                ? "no \(family) '\(reference)'" + (database.map { " of database '\($0)'" } ?? "") + " in this storage (dbq \(family)s list shows them)"
                : "'\(reference)' names \(matches.count) \(family)s; give more of the id")
        }
        return entry
    }
}

/// Which artefacts of one database a retention run removes: all but the newest
/// `keepLast`, and those older than `maxAge` — but never the newest one, whatever its age
/// (a database is never left without its last artefact by age alone). Pure.
public enum ArtefactRetention {
    public static func expired(finishedAt: [Date], keepLast: Int?, maxAge: Double?, now: Date) -> Set<Int> {
        let order = finishedAt.indices.sorted { finishedAt[$0] > finishedAt[$1] }
        var expired = Set<Int>()
        for (rank, index) in order.enumerated() {
            if let keepLast, rank >= keepLast { expired.insert(index) }
            if let maxAge, rank > 0, now.timeIntervalSince(finishedAt[index]) > maxAge { expired.insert(index) }
        }
        return expired
    }
}

/// Reads an artefact's objects one after another, hashing each against the manifest,
/// and hands on their decompressed bytes: a corrupt object fails before its last byte
/// is used.
public final class ArtefactReader: @unchecked Sendable {
    // @unchecked Sendable: used by one consumer (a COPY FROM) at a time, one chunk at a time.
    private var queue: [(String, ManifestObject)]
    private let objectKeys: [String]
    private let store: any ObjectStore
    private let decompressor: Decompressor
    private let family: String
    private let consequence: String
    private var current: (key: String, object: ManifestObject, stream: ByteStream.AsyncIterator, hasher: SHA256Box, size: Int64)?
    private var done = false
    /// Compressed bytes read and not yet decompressed.
    private var pending: ArraySlice<UInt8> = []
    static let slice = 32 << 10

    /// `objects` are paths relative to `folder`; `consequence` ends the corruption
    /// message ("nothing was imported").
    public init(folder: String, objects: [ManifestObject], store: any ObjectStore, codec: Codec, family: String, consequence: String) throws {
        queue = objects.map { (folder + "/" + $0.name, $0) }
        objectKeys = queue.map(\.0)
        self.store = store
        decompressor = try Decompressor(codec: codec)
        self.family = family
        self.consequence = consequence
    }

    public func stream() -> ByteStream { ByteStream { try await self.next() } }

    func next() async throws -> [UInt8]? {
        while !done {
            if current == nil {
                guard !queue.isEmpty else {
                    done = true
                    do { try decompressor.finish() } catch {
                        throw JobError.permanent("\(family) object \(store.url)/\(objectKeys.last ?? "") is corrupt: its compressed data ends early (\(error)); \(consequence)")
                    }
                    return nil
                }
                let (key, object) = queue.removeFirst()
                current = (key, object, try await store.get(key).makeAsyncIterator(), SHA256Box(), 0)
            }
            // Highly compressible data (a table of blanks) inflates a chunk a hundredfold:
            // decompressed a slice at a time, so what is handed on stays small.
            if pending.isEmpty {
                var iterator = current!.stream
                let chunk = try await iterator.next()
                current!.stream = iterator
                guard let chunk else {
                    let c = current!
                    let digest = c.hasher.hex()
                    guard c.size == c.object.size, digest == c.object.sha256 else {
                        throw JobError.permanent("\(family) object \(store.url)/\(c.key) is corrupt: \(c.size) bytes with SHA-256 \(digest.prefix(16))…, the manifest says \(c.object.size) bytes with \(c.object.sha256.prefix(16))…; \(consequence)")
                    }
                    current = nil
                    continue
                }
                current!.hasher.update(chunk)
                current!.size += Int64(chunk.count)
                pending = chunk[...]
            }
            let slice = Array(pending.prefix(Self.slice))
            pending = pending.dropFirst(slice.count)
            var out: [UInt8] = []
            do {
                try decompressor.decompress(slice) { out += $0 }
            } catch {
                // The codec's own frame check can fire before the object's last byte and its SHA-256.
                throw JobError.permanent("\(family) object \(store.url)/\(current!.key) is corrupt: it does not decompress (\(error)); \(consequence)")
            }
            if !out.isEmpty { return out }
        }
        return nil
    }
}

/// SHA-256 as a reference type, so a tuple can hold one while it grows.
public final class SHA256Box {
    private var hasher = SHA256()
    public init() {}
    public func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }
    public func hex() -> String { SigV4Signer.hex(hasher.finalize()) }
}

/// Removes what killed jobs of a family left for one database: folders without a manifest
/// whose newest object is older than `olderThan` seconds, and unfinished uploads as old.
public enum ArtefactSweep {
    public static func sweep(root: String, database: String, store: any ObjectStore, olderThan: Double, now: Date) async throws
        -> (folders: [String], uploads: [String]) {
        let cutoff = now.addingTimeInterval(-olderThan)
        let prefix = root + "/" + database + "/"
        var folders: [String: [ObjectInfo]] = [:]
        for object in try await store.list(prefix: prefix) {
            guard let slash = object.key.dropFirst(prefix.count).firstIndex(of: "/") else { continue }
            folders[String(object.key[..<slash]), default: []].append(object)
        }
        var removed: [String] = []
        for (folder, objects) in folders.sorted(by: { $0.key < $1.key })
        where !objects.contains(where: { $0.key == folder + "/" + ArtefactLayout.manifestName })
            && (objects.compactMap(\.lastModified).max() ?? .distantPast) <= cutoff {
            for object in objects { try await store.delete(object.key) }
            removed.append(folder)
        }
        var uploads: [String] = []
        for write in try await store.abandonedWrites(prefix: prefix, olderThan: olderThan, now: now) {
            try await store.discard(write)
            uploads.append(write.key)
        }
        return (removed, uploads)
    }
}
