import Codecs
import Foundation
import DatabaseJobs
import ObjectStorage
import Queue

/// Where a backup's objects live: `backups/<database>/<UTC time>-<job id>/`.
public enum BackupLayout {
    public static let root = "backups"
    public static let verificationName = "verification.json"

    public static func folder(database: String, id: String) -> String { "\(root)/\(database)/\(id)" }

    public static func dumpName(_ codec: Codec) -> String {
        codec == .none ? "dump" : "dump.\(codec.fileExtension)"
    }

    /// The lock shared by backups of a database into a store and taken alone by retention.
    public static func lockName(database: String, store: String) -> String { "backups:\(database)@\(store)" }
}

/// A backup found in a store: its manifest, and its verification if one was written.
public struct BackupEntry: Sendable, Equatable {
    public var folder: String
    public var manifest: BackupManifest
    public var verification: Verification?

    public var id: String { manifest.id }
    public var isVerified: Bool { verification?.outcome == .passed }
    public var dumpKey: String { folder + "/" + (manifest.dump?.name ?? "") }
}

/// A folder with data and no manifest: a backup that never finished.
public struct OrphanFolder: Sendable, Equatable {
    public var folder: String
    public var keys: [String]
    public var newest: Date?
}

/// The backups in one store, read from their manifests.
public struct BackupCatalog: Sendable {
    public var entries: [BackupEntry]
    public var orphans: [OrphanFolder]
    /// Folders whose manifest exists but cannot be read: never deleted, always reported.
    public var unreadable: [(folder: String, reason: String)]

    /// Lists `backups/` (or `backups/<database>/`), newest first by the manifests' times.
    public static func load(_ store: any ObjectStore, database: String? = nil) async throws -> BackupCatalog {
        let prefix = BackupLayout.root + "/" + (database.map { $0 + "/" } ?? "")
        var folders: [String: [ObjectInfo]] = [:]
        for object in try await store.list(prefix: prefix) {
            let parts = object.key.split(separator: "/", maxSplits: 3)
            guard parts.count == 4 else { continue }
            folders["\(parts[0])/\(parts[1])/\(parts[2])", default: []].append(object)
        }
        var catalog = BackupCatalog(entries: [], orphans: [], unreadable: [])
        for (folder, objects) in folders.sorted(by: { $0.key < $1.key }) {
            let names = Set(objects.map { String($0.key.dropFirst(folder.count + 1)) })
            guard names.contains(ArtefactLayout.manifestName) else {
                catalog.orphans.append(OrphanFolder(folder: folder, keys: objects.map(\.key), newest: objects.compactMap(\.lastModified).max()))
                continue
            }
            do {
                let manifest = try ManifestCoding.decoder.decode(
                    BackupManifest.self, from: Data(try await store.getBytes(folder + "/" + ArtefactLayout.manifestName, limit: 16 << 20)))
                var verification: Verification?
                if names.contains(BackupLayout.verificationName) {
                    verification = try? ManifestCoding.decoder.decode(
                        Verification.self, from: Data(try await store.getBytes(folder + "/" + BackupLayout.verificationName, limit: 1 << 20)))
                }
                catalog.entries.append(BackupEntry(folder: folder, manifest: manifest, verification: verification))
            } catch let error as ObjectStoreError {
                throw error
            } catch {
                catalog.unreadable.append((folder, "manifest does not decode: \(error)"))
            }
        }
        catalog.entries.sort { ($0.manifest.finishedAt, $0.id) > ($1.manifest.finishedAt, $1.id) }
        return catalog
    }

    /// The backup `reference` names: `latest` (of `database`), a backup id, a job id, or
    /// an unambiguous prefix of either (8 characters at least).
    public func resolve(_ reference: String, database: String?, store: String) throws(JobError) -> BackupEntry {
        let candidates = entries.filter { database == nil || $0.manifest.database == database }
        if reference == "latest" {
            guard let newest = candidates.first else {
                throw JobError.permanent("no backups\(database.map { " of database '\($0)'" } ?? "") in \(store); push a backup first (dbq push backup --database \(database ?? "NAME"))")
            }
            return newest
        }
        if let exact = candidates.first(where: { $0.id == reference || $0.manifest.job.id == reference }) { return exact }
        let matches = reference.count >= 8
            ? candidates.filter { $0.id.hasPrefix(reference) || $0.manifest.job.id.hasPrefix(reference) }
            : []
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 {
            throw JobError.permanent("backup id '\(reference)' is ambiguous in \(store): it starts \(matches.count) backups; give more of it")
        }
        throw JobError.permanent("no backup '\(reference)'\(database.map { " of database '\($0)'" } ?? "") in \(store); dbq backups list shows the ids")
    }
}
