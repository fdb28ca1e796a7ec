import DatabaseJobs
import Foundation
import ObjectStorage
import Queue

/// `snapshot-retention`: removes a database's snapshots beyond the newest `keepLast` and
/// those older than `maxAge` (never the newest), manifest first; and what killed snapshot
/// jobs left behind (folders without a manifest, unfinished uploads) once older than any
/// snapshot can run.
public struct SnapshotRetentionJob: ArtefactCleanupJob {
    public static let kind = "snapshot-retention"

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        public var keepLast: Int?
        public var maxAgeSeconds: Double?
        /// Report what would be removed; remove nothing.
        public var dryRun: Bool?

        public init(database: String, storage: String? = nil, keepLast: Int? = nil, maxAgeSeconds: Double? = nil, dryRun: Bool? = nil) {
            self.database = database
            self.storage = storage
            self.keepLast = keepLast
            self.maxAgeSeconds = maxAgeSeconds
            self.dryRun = dryRun
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        guard payload.keepLast != nil || payload.maxAgeSeconds != nil else {
            throw JobError.permanent("snapshot retention needs --keep-last N or --max-age DURATION (or both)")
        }
        if let keep = payload.keepLast, keep < 1 {
            throw JobError.permanent("--keep-last must be at least 1 (the newest snapshot is always kept), not \(keep)")
        }
                _ = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let report = try await Self.apply(payload, store: store, now: Date())
        return try Result(database: payload.database, dryRun: payload.dryRun ?? false, deleted: report.deleted, kept: report.kept,
                          orphansRemoved: report.orphans).json
    }

    /// The snapshots removed (or, dry, that would be) and kept, and the leftovers swept.
    public struct Result: JobResult {
        public var database: String
        public var dryRun: Bool
        public var deleted: [String]
        public var kept: [String]
        public var orphansRemoved: [String]
    }

    public static func apply(_ payload: Payload, store: any ObjectStore, now: Date) async throws -> (deleted: [String], kept: [String], orphans: [String]) {
        let catalog = try await SnapshotCatalog.load(store, database: payload.database)
        let entries = catalog.entries.filter { $0.manifest.database == payload.database }
        let expired = ArtefactRetention.expired(finishedAt: entries.map(\.manifest.finishedAt), keepLast: payload.keepLast,
                                                maxAge: payload.maxAgeSeconds, now: now)
        var deleted: [String] = []
        var kept: [String] = []
        for (index, entry) in entries.enumerated() {
            guard expired.contains(index) else { kept.append(entry.id); continue }
            deleted.append(entry.id)
            guard !(payload.dryRun ?? false) else { continue }
            // Manifest first: from then on the rest is data without a manifest, which
            // readers ignore and a later sweep removes if this run is cut short.
            try await store.delete(entry.folder + "/" + ArtefactLayout.manifestName)
            for table in entry.manifest.tables {
                for object in table.objects { try await store.delete(entry.folder + "/" + object.name) }
            }
        }
        var orphans: [String] = []
        if !(payload.dryRun ?? false) {
            let swept = try await ArtefactSweep.sweep(root: ArtefactLayout.snapshotsRoot, database: payload.database, store: store,
                                                      olderThan: ArtefactLayout.exportMaximumSeconds, now: now)
            orphans = swept.folders
        }
        return (deleted, kept, orphans)
    }
}

extension JobRegistry {
    /// Registers snapshot, rollback and snapshot-retention.
    public mutating func registerSnapshotJobs(environment: @escaping JobEnvironment.Provider) {
        register(SnapshotJob.self, environment: environment)
        register(RollbackJob.self, environment: environment)
        register(SnapshotRetentionJob.self, environment: environment)
    }
}
