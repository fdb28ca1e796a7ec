import DatabaseJobs
import Foundation
import ObjectStorage
import Queue

/// `retention`: applies a grandfather-father-son policy to a database's backups in a
/// store, under the lock its backups share, then removes what killed writers left:
/// unfinished uploads and data that never got a manifest, once older than the grace.
public struct RetentionJob: ArtefactCleanupJob {
    public static let kind = "retention"

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        public var keepLast: Int?
        public var daily: Int?
        public var weekly: Int?
        public var monthly: Int?
        public var yearly: Int?
        public var minAgeSeconds: Double?
        public var graceSeconds: Double?

        public init(database: String, storage: String? = nil, policy: RetentionPolicy? = nil) {
            self.database = database
            self.storage = storage
            if let policy {
                keepLast = policy.keepLast
                daily = policy.daily
                weekly = policy.weekly
                monthly = policy.monthly
                yearly = policy.yearly
                minAgeSeconds = policy.minAgeSeconds
                graceSeconds = policy.graceSeconds
            }
        }

        /// The payload's policy, the standard one filling what it leaves out.
        public var policy: RetentionPolicy {
            let s = RetentionPolicy.standard
            return RetentionPolicy(keepLast: keepLast ?? s.keepLast, daily: daily ?? s.daily, weekly: weekly ?? s.weekly,
                                   monthly: monthly ?? s.monthly, yearly: yearly ?? s.yearly,
                                   minAgeSeconds: minAgeSeconds ?? s.minAgeSeconds, graceSeconds: graceSeconds ?? s.graceSeconds)
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let policy = payload.policy
        try policy.validate()
        _ = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let report = try await Retention.apply(policy, database: payload.database, store: store, env: env,
                                               owner: "\(context.id)#\(context.fencingToken)", logger: context.logger)
        return try report.json
    }
}

/// What one application of retention did.
public struct RetentionReport: Sendable, JobResult {
    public var decisions: [RetentionPolicy.Decision]
    public var deleted: [String]
    public var orphansRemoved: [String]
    public var uploadsAborted: [String]
    public var unreadable: [String]

    /// As the job reports it: how many kept, and what went.
    private enum CodingKeys: String, CodingKey { case kept, deleted, orphansRemoved, uploadsAborted, unreadable }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(decisions.filter(\.keep).count, forKey: .kept)
        try container.encode(deleted, forKey: .deleted)
        try container.encode(orphansRemoved, forKey: .orphansRemoved)
        try container.encode(uploadsAborted, forKey: .uploadsAborted)
        try container.encode(unreadable, forKey: .unreadable)
    }
}

public enum Retention {
    /// The decisions for a database's backups in a store, without changing anything.
    public static func plan(_ policy: RetentionPolicy, database: String, store: any ObjectStore, now: Date = Date()) async throws
        -> (decisions: [RetentionPolicy.Decision], catalog: BackupCatalog)
    {
        try policy.validate()
        let catalog = try await BackupCatalog.load(store, database: database)
        let candidates = catalog.entries.map { RetentionPolicy.Candidate(id: $0.id, time: $0.manifest.finishedAt, verified: $0.isVerified) }
        return (policy.plan(candidates, now: now), catalog)
    }

    /// Applies the policy under the database's backup lock (taken alone: no backup of
    /// the database runs meanwhile, so the grace can even be 0).
    public static func apply(_ policy: RetentionPolicy, database: String, store: any ObjectStore, env: JobEnvironment,
                             owner: String, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) async throws -> RetentionReport {
        try policy.validate()
        let lock = BackupLayout.lockName(database: database, store: store.url)
        return try await env.locks.withLock(lock, mode: .exclusive, owner: owner, wait: env.lockWait) {
            let (decisions, catalog) = try await plan(policy, database: database, store: store, now: now())
            var report = RetentionReport(decisions: decisions, deleted: [], orphansRemoved: [], uploadsAborted: [],
                                         unreadable: catalog.unreadable.map(\.folder))
            let byID = Dictionary(catalog.entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for decision in decisions where !decision.keep {
                guard let entry = byID[decision.id] else { continue }
                // Manifest first: from then on the rest is data without a manifest, which
                // readers ignore and a later run removes if this one is cut short.
                try await store.delete(entry.folder + "/" + ArtefactLayout.manifestName)
                try await store.delete(entry.folder + "/" + BackupLayout.verificationName)
                for object in entry.manifest.objects { try await store.delete(entry.folder + "/" + object.name) }
                report.deleted.append(entry.id)
                logger.info("retention deleted a backup", metadata: ["backup.id": "\(entry.id)", "reason": "\(decision.reasons.joined(separator: ", "))"])
            }
            let cutoff = now().addingTimeInterval(-policy.graceSeconds)
            for orphan in catalog.orphans where (orphan.newest ?? .distantPast) <= cutoff {
                for key in orphan.keys { try await store.delete(key) }
                report.orphansRemoved.append(orphan.folder)
            }
            let prefix = BackupLayout.root + "/" + database + "/"
            for write in try await store.abandonedWrites(prefix: prefix, olderThan: policy.graceSeconds, now: now()) {
                try await store.discard(write)
                report.uploadsAborted.append(write.key)
            }
            // The database's exports and snapshots that never got a manifest (killed jobs):
            // removed once older than the grace and than any such job can run (its
            // timeout), so one still writing is never touched.
            for root in [ArtefactLayout.exportsRoot, ArtefactLayout.snapshotsRoot] {
                let swept = try await ArtefactSweep.sweep(root: root, database: database, store: store,
                                                          olderThan: max(policy.graceSeconds, ArtefactLayout.exportMaximumSeconds), now: now())
                report.orphansRemoved += swept.folders
                report.uploadsAborted += swept.uploads
            }
            if !report.orphansRemoved.isEmpty || !report.uploadsAborted.isEmpty {
                logger.info("retention removed unfinished backups", metadata: [
                    "folders": "\(report.orphansRemoved.count)", "uploads": "\(report.uploadsAborted.count)",
                ])
            }
            return report
        }
    }
}

import Logging
