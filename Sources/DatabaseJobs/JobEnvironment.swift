import DBQConfig
import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import Queue

/// What every database job needs from the process that runs it: the configuration (named
/// databases and storages), the locks shared with other workers, and the tools.
public struct JobEnvironment: Sendable {
    /// How a registered job gets its environment: called when the job runs (a pusher only
    /// decodes payloads and never calls it).
    public typealias Provider = @Sendable () throws -> JobEnvironment

    public var configuration: DBQConfiguration
    public var locks: any ResourceLocks
    public var pgDump: String
    public var pgRestore: String
    public var logger: Logger
    /// How long a job waits for a lock it shares or excludes (a database's lock, a store's
    /// artefact lock) before it gives up for this attempt and is retried.
    public var lockWait: Duration
    /// Bytes per data object instead of the storage's own limit (tests).
    public var objectLimitOverride: Int64?

    public init(configuration: DBQConfiguration, locks: any ResourceLocks, logger: Logger,
                environment: [String: String] = ProcessInfo.processInfo.environment, lockWait: Duration = .seconds(60)) {
        self.configuration = configuration
        self.locks = locks
        self.logger = logger
        self.lockWait = lockWait
        pgDump = environment["DBQ_PG_DUMP"].flatMap { $0.isEmpty ? nil : $0 } ?? "pg_dump"
        pgRestore = environment["DBQ_PG_RESTORE"].flatMap { $0.isEmpty ? nil : $0 } ?? "pg_restore"
    }

    /// The connection string of a configured database.
    public func database(_ name: String) throws(JobError) -> PostgresConnectionString {
        guard let url = configuration.databases[name] else { throw .permanent(configuration.unknownDatabase(name)) }
        return url
    }

    /// Opens a configured storage (the default one when `name` is nil; the embedded
    /// local store when none is configured).
    /// Opening a store reads only settings and the environment: what fails here (no
    /// credentials, a bad endpoint) fails the same way on every attempt, so it is permanent.
    private func open(_ name: String, _ settings: StorageSettings) throws -> any ObjectStore {
        do {
            return try settings.open(logger: logger)
        } catch {
            throw JobError.permanent("storage '\(name)': \(error)")
        }
    }

    public func store(_ name: String?) throws -> (name: String, store: any ObjectStore) {
        if let name {
            guard let settings = configuration.storages[name] else {
                let known = configuration.storages.keys.sorted()
                throw JobError.permanent("unknown storage '\(name)'; "
                    + (known.isEmpty ? "no storages are configured (backups go to \(DBQConfiguration.embeddedStorageURL))" : "configured: \(known.joined(separator: ", "))"))
            }
            return (name, try open(name, settings))
        }
        if let name = configuration.defaultStorageName(), let settings = configuration.storages[name] {
            return (name, try open(name, settings))
        }
        if !configuration.storages.isEmpty {
            throw JobError.permanent("several storages are configured (\(configuration.storages.keys.sorted().joined(separator: ", "))) and none is named 'archive'; say which with --storage")
        }
        return ("default", try StorageURL(DBQConfiguration.embeddedStorageURL).open(logger: logger))
    }
}

extension JobEnvironment {
    /// The most bytes one data object may hold in the storage `store(name)` opens: a
    /// longer dump continues in further objects (`SegmentedWrite`).
    public func objectLimit(_ name: String?) -> Int64 {
        if let override = objectLimitOverride { return override }
        let settings = name.flatMap { configuration.storages[$0] }
            ?? configuration.defaultStorageName().flatMap { configuration.storages[$0] }
        return settings?.objectLimit ?? Int64.max
    }
}

/// A store refusing the credentials, a missing bucket or object, a bad key or setting: no
/// retry cures them, so a job (backup, restore, export, snapshot) ends at its first attempt
/// with the store's message instead of repeating it. The network, a server error, an
/// integrity check or a local I/O error may pass: those are retried.
extension ObjectStoreError: TransientError {
    public var isTransient: Bool {
        ![.accessDenied, .notFound, .invalidURL, .invalidKey, .tooLarge, .configuration].contains(code)
    }
}
