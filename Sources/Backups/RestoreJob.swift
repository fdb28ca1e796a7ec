import Codecs
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `restore`: streams a backup into `pg_restore` in one transaction, checking size and
/// SHA-256 as it reads; a mismatch stops it before anything is committed.
public struct RestoreJob: DatabaseJob {
    public static let kind = "restore"
    public static var lockClass: DatabaseLockClass? { .ddl }
    /// A restore is not retried blindly: its target may have changed in between.
    public static var defaultMaxAttempts: Int { 1 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }

    public struct Payload: Codable, Sendable {
        /// The configured database whose backups to restore from.
        public var database: String
        /// A backup id, job id or unambiguous prefix; `latest` if absent.
        public var backup: String?
        /// The database to restore into: a configured name, or a database name on the
        /// source's server.
        public var target: String
        public var storage: String?
        /// Create the target database (it must not exist).
        public var create: Bool?
        /// Drop the target's objects before recreating them.
        public var clean: Bool?
        /// Allow restoring over the source database itself.
        public var force: Bool?

        public init(database: String, backup: String? = nil, target: String, storage: String? = nil,
                    create: Bool? = nil, clean: Bool? = nil, force: Bool? = nil) {
            self.database = database
            self.backup = backup
            self.target = target
            self.storage = storage
            self.create = create
            self.clean = clean
            self.force = force
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let sourceURL = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let target = try Self.resolveTarget(payload.target, source: sourceURL, env: env)
        if target.endpoint == sourceURL.endpoint && target.database == sourceURL.database && payload.force != true {
            throw JobError.permanent(
                "refusing to restore over the source database '\(payload.database)' (\(target)); restore into another database, or pass --force to overwrite it")
        }
        let catalog = try await BackupCatalog.load(store, database: payload.database)
        let entry = try catalog.resolve(payload.backup ?? "latest", database: payload.database, store: store.url)
        let targetName = target.database ?? payload.target
        // A configured target is written to: it takes that database's DDL lock (imports,
        // migrations and backups of it wait).
        let lockDatabase = env.configuration.databases[payload.target] != nil ? payload.target : "new:\(targetName)"
        return try await env.withDatabaseLock(lockDatabase, for: Self.self, context: context) {
            try await Self.restore(entry, payload: payload, target: target, targetName: targetName, store: store, env: env, context: context)
        }
    }

    static func restore(_ entry: BackupEntry, payload: Payload, target: PostgresConnectionString, targetName: String,
                        store: any ObjectStore, env: JobEnvironment, context: JobContext) async throws -> JSONValue {
        let clock = ContinuousClock.now
        if payload.create == true {
            try await Restorer.createDatabase(targetName, on: target, logger: context.logger)
        }
        do {
            let bytes = try await Restorer.restore(entry, from: store, into: target, clean: payload.clean == true, env: env, context: context)
            return try Result(backup: entry.id, target: targetName, bytes: bytes, tables: entry.manifest.tables.count,
                              seconds: ((ContinuousClock.now - clock).seconds * 1000).rounded() / 1000).json
        } catch {
            if payload.create == true { await Restorer.dropDatabase(targetName, on: target, logger: context.logger) }
            throw error
        }
    }

    /// What a restore reports.
    public struct Result: JobResult {
        public var backup: String
        public var target: String
        /// Bytes of the backup read.
        public var bytes: Int64
        public var tables: Int
        public var seconds: Double
    }

    /// A configured database name, else a database of that name on the source's server.
    static func resolveTarget(_ target: String, source: PostgresConnectionString, env: JobEnvironment) throws -> PostgresConnectionString {
        if let configured = env.configuration.databases[target] { return configured }
        do {
            try PostgresIdentifier.validate(target)
            return try PostgresConnectionString(source.replacingDatabase(target))
        } catch {
            throw JobError.permanent("restore target '\(target)' is neither a configured database nor a valid database name: \(error)")
        }
    }
}

/// `verify-backup`: restores a backup into a scratch database, compares its tables and
/// row counts with the manifest, writes the verification beside the manifest and drops
/// the scratch database whatever happens.
public struct VerifyBackupJob: DatabaseJob {
    public static let kind = "verify-backup"
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var backup: String?
        public var storage: String?

        public init(database: String, backup: String? = nil, storage: String? = nil) {
            self.database = database
            self.backup = backup
            self.storage = storage
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let sourceURL = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let catalog = try await BackupCatalog.load(store, database: payload.database)
        let entry = try catalog.resolve(payload.backup ?? "latest", database: payload.database, store: store.url)
        // One scratch name per job: a retry first drops what a killed attempt left.
        let scratch = "dbq_verify_" + context.id.replacingOccurrences(of: "-", with: "").suffix(16)
        let scratchURL = try PostgresConnectionString(sourceURL.replacingDatabase(scratch))
        let clock = ContinuousClock.now

        var mismatches: [String] = []
        var failure: (any Error)?
        do {
            await Restorer.dropDatabase(scratch, on: sourceURL, logger: context.logger)
            try await Restorer.createDatabase(scratch, on: sourceURL, logger: context.logger)
            _ = try await Restorer.restore(entry, from: store, into: scratchURL, clean: false, env: env, context: context)
            let actual = try await DatabaseScope.withConnection(scratchURL, database: scratch, application: "dbq verify", logger: context.logger) {
                try await TableInventory.count($0)
            }
            mismatches = TableInventory.compare(expected: entry.manifest.tables, actual: actual)
        } catch let error as JobError where !error.isRetryable {
            // The backup itself is bad (corrupt object): that is the verification's finding.
            mismatches = [error.message]
            failure = error
        } catch {
            await Restorer.dropDatabase(scratch, on: sourceURL, logger: context.logger)
            throw error
        }
        await Restorer.dropDatabase(scratch, on: sourceURL, logger: context.logger)

        let verification = Verification(
            format: Verification.currentFormat, backup: entry.id, verifiedAt: Date(),
            outcome: mismatches.isEmpty ? .passed : .failed, mismatches: mismatches,
            seconds: ((ContinuousClock.now - clock).seconds * 1000).rounded() / 1000,
            job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken))
        try await context.confirmLease()
        _ = try await store.put(entry.folder + "/" + BackupLayout.verificationName, bytes: Array(try ManifestCoding.encoder.encode(verification)))
        if !mismatches.isEmpty {
            if let failure { throw failure }
            throw JobError.permanent("backup \(entry.id) failed verification: " + mismatches.joined(separator: "; "))
        }
        context.logger.info("backup verified", metadata: ["backup.id": "\(entry.id)", "tables": "\(entry.manifest.tables.count)"])
        return try Result(backup: entry.id, database: entry.manifest.database, outcome: "passed", tables: entry.manifest.tables.count,
                          seconds: verification.seconds).json
    }

    /// A passed verification (a failed one ends the job with its mismatches).
    public struct Result: JobResult {
        public var backup: String
        public var database: String
        public var outcome: String
        public var tables: Int
        public var seconds: Double
    }
}

/// The restore path shared by `restore` and `verify-backup`.
enum Restorer {
    /// Streams the backup's data objects, in order, into `pg_restore --single-transaction`;
    /// returns the bytes read.
    static func restore(_ entry: BackupEntry, from store: any ObjectStore, into target: PostgresConnectionString, clean: Bool,
                        env: JobEnvironment, context: JobContext) async throws -> Int64 {
        let objects = entry.manifest.objects
        guard !objects.isEmpty else {
            throw JobError.permanent("backup \(entry.id) has no data object in its manifest")
        }
        let total = entry.manifest.storedSize
        let (conninfo, childEnvironment) = target.childProcessArguments()
        var arguments = ["--single-transaction", "--exit-on-error", "--no-password", "--dbname=\(conninfo)"]
        if clean { arguments += ["--clean", "--if-exists"] }
        // The first object is opened before pg_restore starts: a missing backup starts nothing.
        var first: ByteStream? = try await open(entry.folder + "/" + objects[0].name, in: store)
        let pgRestore = try await env.pgRestore(dumpVersion: entry.manifest.pgDumpVersion, what: "backup \(entry.id)")
        let process = try Subprocess(pgRestore, arguments: arguments,
                                     environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 }, pipeStdin: true)
        let sink = RestoreSink(process: process, decompressor: try Decompressor(codec: entry.manifest.codec))
        do {
            for object in objects {
                let key = entry.folder + "/" + object.name
                let stream: ByteStream
                if let opened = first { stream = opened; first = nil } else { stream = try await open(key, in: store) }
                await sink.lane.run { sink.beginObject() }
                for try await chunk in stream {
                    try Task.checkCancellation()
                    let stored = try await sink.lane.run { () throws -> Int64 in
                        try sink.feed(chunk)
                        return sink.storedBytes
                    }
                    await context.progress(JobProgress(fraction: Double(stored) / Double(max(1, total)), bytes: stored,
                                                       message: "\(mib(stored)) of \(mib(total)) restored"))
                }
                try await sink.lane.run { try sink.finishObject(expected: object, object: "\(store.url)/\(key)") }
            }
            try await sink.lane.run { try sink.finish(object: "\(store.url)/\(entry.dumpKey)") }
        } catch {
            // pg_restore never sees the end of its input: its transaction is not committed.
            process.kill(SIGKILL)
            _ = await process.wait()
            throw error
        }
        let object = "\(store.url)/\(entry.dumpKey)"
        process.closeStdin()
        let status = await process.wait()
        guard status == 0 else {
            throw JobError.permanent("pg_restore of \(object) into \(target) failed (exit \(status)): \(DumpSource.lastLines(process.standardError)); nothing was committed")
        }
        return sink.storedBytes
    }

    /// Opens one data object; a missing one names the backup it breaks.
    static func open(_ key: String, in store: any ObjectStore) async throws -> ByteStream {
        do {
            return try await store.get(key)
        } catch let error as ObjectStoreError where error.code == .notFound {
            throw JobError.permanent("backup object \(store.url)/\(key) is missing (the manifest lists it); the backup cannot be restored")
        }
    }

    static func createDatabase(_ name: String, on server: PostgresConnectionString, logger: Logger) async throws {
        do {
            try await withAdminConnection(server, logger: logger) { _ = try await $0.execute("CREATE DATABASE \(try PostgresIdentifier.quoted(name))") }
        } catch let error as PostgresError where error.sqlState == "42P04" {
            throw JobError.permanent("database '\(name)' already exists on \(server.endpoint); drop it, restore into another name, or restore without --create (with --clean to replace its objects)")
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw JobError.permanent("the role cannot create database '\(name)' on \(server.endpoint) (it needs CREATEDB): \(error)")
        }
    }

    /// Drops a database if it exists, disconnecting its sessions; never throws (logs).
    static func dropDatabase(_ name: String, on server: PostgresConnectionString, logger: Logger) async {
        await Task.detached {
            do {
                try await withAdminConnection(server, logger: logger) {
                    _ = try await $0.execute("DROP DATABASE IF EXISTS \(try PostgresIdentifier.quoted(name)) WITH (FORCE)")
                }
            } catch {
                logger.warning("could not drop database; drop it by hand", metadata: ["database": "\(name)", "error": "\(error)"])
            }
        }.value
    }

    /// Runs `body` on a connection to the server's maintenance database (`postgres`).
    static func withAdminConnection<T>(_ server: PostgresConnectionString, logger: Logger, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await DatabaseScope.withConnection(try PostgresConnectionString(server.replacingDatabase("postgres")), database: server.database ?? "postgres",
                                               application: "dbq admin", logger: logger, body)
    }
}

import Logging
