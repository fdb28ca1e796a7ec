import Foundation
import ObjectStorage
import Queue
import Synchronization

/// The commit protocol of every job that writes an artefact (a backup, an export, a
/// snapshot): data objects first, then — only while this attempt still holds its job —
/// the manifest, last. Until the manifest exists, readers and retention see nothing; if
/// anything fails before it, every object this attempt wrote is deleted (and an upload
/// a killed process left behind is aborted by retention after its grace).
public final class ArtefactCommit: Sendable {
    public let store: any ObjectStore
    /// `<prefix>/<family>/<database>/<id>`: the artefact's folder.
    public let folder: String
    private let written = Mutex<[String]>([])

    init(store: any ObjectStore, folder: String) {
        self.store = store
        self.folder = folder
    }

    /// Runs `body`, which writes the data objects (through `put` or `record`) and returns
    /// the manifest; then confirms the lease and writes the manifest. On any failure the
    /// objects written are deleted and the error is rethrown.
    public static func run<Manifest: Encodable & Sendable, Result: Sendable>(
        store: any ObjectStore, folder: String, context: JobContext,
        _ body: (ArtefactCommit) async throws -> (manifest: Manifest, result: Result)
    ) async throws -> Result {
        let commit = ArtefactCommit(store: store, folder: folder)
        do {
            let (manifest, result) = try await body(commit)
            // The commit: only while this attempt still holds the job.
            try await context.confirmLease()
            _ = try await store.put(folder + "/" + ArtefactLayout.manifestName, bytes: Array(try ManifestCoding.encoder.encode(manifest)))
            return result
        } catch {
            await commit.abandon()
            throw error
        }
    }

    /// Writes one object of the artefact (`name` relative to the folder).
    @discardableResult
    public func put(_ name: String, bytes: [UInt8]) async throws -> ObjectInfo {
        let info = try await store.put(folder + "/" + name, bytes: bytes)
        record([info.key])
        return info
    }

    /// Notes objects written another way (a segmented stream), so a failure removes them.
    public func record(_ keys: [String]) {
        written.withLock { $0 += keys }
    }

    /// The name of `key` inside the folder.
    public func name(_ key: String) -> String { String(key.dropFirst(folder.count + 1)) }

    func abandon() async {
        for key in written.withLock({ $0 }) { try? await store.delete(key) }
    }
}
