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
    /// `pg_dump` and `pg_restore` as named by `DBQ_PG_DUMP` / `DBQ_PG_RESTORE` (used as
    /// they are); nil: chosen per server by `PostgresTools`.
    public var pgDump: String?
    public var pgRestore: String?
    /// What `PostgresTools` searches (`DBQ_PG_BIN_DIRS`, `PATH`), as the process started.
    var toolEnvironment: [String: String]
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
        pgDump = environment["DBQ_PG_DUMP"].flatMap { $0.isEmpty ? nil : $0 }
        pgRestore = environment["DBQ_PG_RESTORE"].flatMap { $0.isEmpty ? nil : $0 }
        toolEnvironment = environment.filter { $0.key == "DBQ_PG_BIN_DIRS" || $0.key == "PATH" }
    }

    /// The `pg_dump` for a server of `server_version_num` `versionNumber` (database `name`):
    /// at least as new as the server.
    public func pgDump(serverVersionNumber versionNumber: Int, database name: String) async throws -> String {
        if let pgDump { return pgDump }
        let major = PostgresTools.major(versionNumber: versionNumber)
        return try await PostgresTools.tool("pg_dump", atLeast: major, for: "database '\(name)' (PostgreSQL \(major))", environment: toolEnvironment)
    }

    /// Another PostgreSQL tool (`pg_basebackup`, `pg_ctl`, `pg_verifybackup`) at least as
    /// new as a server of `server_version_num` `versionNumber`.
    public func pgTool(_ tool: String, serverVersionNumber versionNumber: Int, database name: String) async throws -> String {
        let major = PostgresTools.major(versionNumber: versionNumber)
        return try await PostgresTools.tool(tool, atLeast: major, for: "database '\(name)' (PostgreSQL \(major))", environment: toolEnvironment)
    }

    /// The `pg_restore` for an archive written by `pg_dump` `dumpVersion` (its `--version`
    /// text): at least as new as that `pg_dump`.
    public func pgRestore(dumpVersion: String, what: String) async throws -> String {
        if let pgRestore { return pgRestore }
        let major = PostgresTools.major(versionText: dumpVersion) ?? 0
        return try await PostgresTools.tool("pg_restore", atLeast: major, for: "\(what) (written by pg_dump \(major))", environment: toolEnvironment)
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
