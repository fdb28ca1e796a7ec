import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import Queue

/// What a rollback does before it locks anything: every object of the snapshot read once,
/// its size and SHA-256 checked, decompressed and its rows counted, so a corrupt object or
/// a wrong count is refused while the application still has its tables. A remote store's
/// objects are copied meanwhile into a local folder (under `DBQ_STAGING_DIR`, else the
/// temporary directory; one per job, so a retry starts afresh), read again under the locks.
struct Staging {
    let store: any ObjectStore
    let folder: String?
    let note: String?

    func remove() { if let folder { try? FileManager.default.removeItem(atPath: folder) } }

    static func prepare(_ entry: SnapshotCatalog.Entry, store: any ObjectStore, jobID: String, context: JobContext) async throws -> Staging {
        let manifest = entry.manifest
        var staging = Staging(store: store, folder: nil, note: "the snapshot's store is local: read in place")
        if !(store is LocalStore) {
            let root = (ProcessInfo.processInfo.environment["DBQ_STAGING_DIR"] ?? NSTemporaryDirectory()) + "/dbq-rollback-" + jobID
            try? FileManager.default.removeItem(atPath: root)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let bytes = manifest.tables.flatMap(\.objects).reduce(Int64(0)) { $0 + $1.size }
            if let free = freeBytes(root), free < bytes + bytes / 10 + (64 << 20) {
                try? FileManager.default.removeItem(atPath: root)
                staging = Staging(store: store, folder: nil,
                                  note: "the staging folder has \(free >> 20) MiB free for \(bytes >> 20) MiB of objects: read from the store under the locks (set DBQ_STAGING_DIR)")
            } else {
                let local = try LocalStore(root: root)
                for (index, table) in manifest.tables.enumerated() {
                    for object in table.objects {
                        let key = entry.folder + "/" + object.name
                        _ = try await local.put(key, from: try await store.get(key))
                    }
                    await context.progress(JobProgress(fraction: Double(index + 1) / Double(manifest.tables.count) / 2,
                                                       message: "\(index + 1) of \(manifest.tables.count) tables downloaded"))
                }
                staging = Staging(store: local, folder: root, note: nil)
            }
        }
        do {
            for table in manifest.tables {
                let reader = try ArtefactReader(folder: entry.folder, objects: table.objects, store: staging.store, codec: manifest.codec,
                                                family: "snapshot", consequence: "nothing was rolled back")
                var counter = BinaryCopyCounter()
                do {
                    for try await chunk in reader.stream() { try counter.feed(chunk) }
                } catch let error as BinaryCopyCounter.Malformed {
                    throw JobError.permanent("table \(table.qualifiedName): the snapshot's data is not a binary COPY stream (\(error)); nothing was rolled back")
                }
                guard counter.finished, counter.rows == table.rows else {
                    throw JobError.permanent("table \(table.qualifiedName): the snapshot holds \(table.rows) rows but its objects hold \(counter.rows)\(counter.finished ? "" : " and end early"); nothing was rolled back")
                }
            }
        } catch {
            staging.remove()
            throw error
        }
        return staging
    }

    static func freeBytes(_ path: String) -> Int64? {
        guard let attributes = try? FileManager.default.attributesOfFileSystem(forPath: path),
              let free = attributes[.systemFreeSize] as? NSNumber else { return nil }
        return free.int64Value
    }
}
