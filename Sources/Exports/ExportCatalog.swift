import Backups
import Crypto
import Foundation
import ObjectStorage

/// The exports in a store: only folders with a manifest count.
public struct ExportCatalog: Sendable {
    public struct Entry: Sendable {
        public var folder: String
        public var manifest: ExportManifest
        public var id: String { manifest.id }
    }
    /// Oldest first, by the manifest's recorded end.
    public var entries: [Entry]

    public static func load(_ store: any ObjectStore) async throws -> ExportCatalog {
        var entries: [Entry] = []
        for info in try await store.list(prefix: ExportLayout.root + "/") where info.key.hasSuffix("/" + BackupLayout.manifestName) {
            let bytes = try await store.getBytes(info.key)
            guard let manifest = try? ManifestCoding.decoder.decode(ExportManifest.self, from: Data(bytes)) else { continue }
            entries.append(Entry(folder: String(info.key.dropLast(BackupLayout.manifestName.count + 1)), manifest: manifest))
        }
        return ExportCatalog(entries: entries.sorted { ($0.manifest.finishedAt, $0.id) < ($1.manifest.finishedAt, $1.id) })
    }

    /// `latest` (of `database` if given), a whole id, a job id, or an unambiguous prefix.
    public func find(_ reference: String, database: String? = nil) throws -> Entry {
        let candidates = entries.filter { database == nil || $0.manifest.database == database }
        if reference == "latest" {
            guard let last = candidates.last else {
                throw BackupError.permanent("no export" + (database.map { " of database '\($0)'" } ?? "") + " in this storage")
            }
            return last
        }
        let matches = candidates.filter { $0.id == reference || $0.manifest.job.id == reference || $0.id.hasPrefix(reference) }
        guard matches.count == 1, let entry = matches.first else {
            throw BackupError.permanent(matches.isEmpty ? "no export '\(reference)' in this storage" : "'\(reference)' names \(matches.count) exports; give more of the id")
        }
        return entry
    }
}

/// SHA-256 as a reference type, so a tuple can hold one while it grows.
final class SHA256Box {
    private var hasher = SHA256()
    func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }
    func hex() -> String { SigV4Signer.hex(hasher.finalize()) }
}
