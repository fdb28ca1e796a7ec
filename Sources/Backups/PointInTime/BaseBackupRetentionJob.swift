import DatabaseJobs
import Foundation
import Logging
import ObjectStorage
import Queue

/// `basebackup-retention`: the grandfather-father-son policy of dump retention applied to a
/// database's base backups, then the WAL archive trimmed to what the oldest kept base
/// backup needs: every segment before its first WAL file goes, on every timeline (no kept
/// backup can replay it), and nothing after it. With no base backup kept, no WAL is
/// removed.
public struct BaseBackupRetentionJob: ArtefactCleanupJob {
    public static let kind = "basebackup-retention"
    public typealias Payload = RetentionJob.Payload

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let policy = payload.policy
        try policy.validate()
        _ = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let owner = "\(context.id)#\(context.fencingToken)"
        let lock = BaseBackupLayout.lockName(database: payload.database, store: store.url)
        return try await env.locks.withLock(lock, mode: .exclusive, owner: owner, wait: env.lockWait) {
            try await Self.apply(policy, database: payload.database, store: store, logger: context.logger).json
        }
    }

    public struct Report: JobResult {
        public var kept: [String]
        public var deleted: [String]
        /// The first WAL file kept (the oldest kept base backup's start), and how many
        /// archived files before it were deleted.
        public var walKeptFrom: String?
        public var walDeleted: Int
    }

    /// The decisions (pure): which base backups go, and from which WAL file on the archive
    /// must stay.
    public static func plan(_ policy: RetentionPolicy, _ entries: [BaseBackupEntry], now: Date)
        -> (decisions: [RetentionPolicy.Decision], walFrom: WALFileName?)
    {
        let decisions = policy.plan(entries.map { RetentionPolicy.Candidate(id: $0.id, time: $0.manifest.finishedAt, verified: false) }, now: now)
        let kept = Set(decisions.filter(\.keep).map(\.id))
        let oldest = entries.filter { kept.contains($0.id) }.compactMap { entry -> (UInt64, WALFileName)? in
            guard let file = WALFileName(entry.manifest.walStart), let n = file.segmentNumber(segmentBytes: entry.manifest.walSegmentBytes) else { return nil }
            return (n, file)
        }.min { $0.0 < $1.0 }
        return (decisions, oldest?.1)
    }

    static func apply(_ policy: RetentionPolicy, database: String, store: any ObjectStore, logger: Logger, now: Date = Date()) async throws -> Report {
        let catalog = try await BaseBackupCatalog.load(store, database: database)
        let (decisions, walFrom) = plan(policy, catalog.entries, now: now)
        let byID = Dictionary(catalog.entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var report = Report(kept: decisions.filter(\.keep).map(\.id), deleted: [], walKeptFrom: walFrom?.name, walDeleted: 0)
        for decision in decisions where !decision.keep {
            guard let entry = byID[decision.id] else { continue }
            // Manifest first: the rest is then data no reader counts.
            try await store.delete(entry.folder + "/" + ArtefactLayout.manifestName)
            for object in entry.manifest.objects { try await store.delete(entry.folder + "/" + object.name) }
            report.deleted.append(entry.id)
            logger.info("retention deleted a base backup", metadata: ["basebackup.id": "\(entry.id)", "reason": "\(decision.reasons.joined(separator: ", "))"])
        }
        if let walFrom {
            let segmentBytes = catalog.entries.first?.manifest.walSegmentBytes ?? (16 << 20)
            report.walDeleted = try await WALArchive(store: store, database: database).remove(before: walFrom, segmentBytes: segmentBytes).count
        }
        return report
    }
}

extension BaseBackupLayout {
    /// Shared by base backups of a database into a store, taken alone by their retention.
    public static func lockName(database: String, store: String) -> String { "basebackups:\(database)@\(store)" }
}
