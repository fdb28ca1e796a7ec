import Codecs
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `backup`: `pg_dump --format=custom` (its own compression off) streamed through the
/// codec and SHA-256 into the store, row counts taken in the same snapshot, and the
/// manifest written last, while the lease is still held.
public struct BackupJob: ArtefactJob {
    public static let kind = "backup"

    public struct Payload: Codable, Sendable {
        /// A database name from the configuration.
        public var database: String
        /// A storage name; the default storage if absent.
        public var storage: String?
        /// `zstd` (default), `gzip` or `none`.
        public var codec: String?
        public var level: Int?

        public init(database: String, storage: String? = nil, codec: String? = nil, level: Int? = nil) {
            self.database = database
            self.storage = storage
            self.codec = codec
            self.level = level
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let codec = try Codec.payload(payload.codec)
        let level = try JobError.payload { try codec.checkedLevel(payload.level) }
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let objectLimit = env.objectLimit(payload.storage)
        let lock = BackupLayout.lockName(database: payload.database, store: store.url)
        let owner = "\(context.id)#\(context.fencingToken)"
        // The database's read lock (imports and migrations wait), then the artefacts' (retention waits).
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await env.locks.withLock(lock, mode: .shared, owner: owner, wait: env.lockWait) {
                try await Self.backup(payload.database, url: url, store: store, objectLimit: objectLimit, codec: codec, level: level,
                                      env: env, context: context)
            }
        }
    }

    static func backup(_ name: String, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec, level: Int,
                       env: JobEnvironment, context: JobContext) async throws -> JSONValue {
        try await DatabaseScope.withConnection(url, database: name, application: "dbq backup", logger: context.logger) { connection in
            try await backup(name, url: url, store: store, objectLimit: objectLimit, codec: codec, level: level, env: env, context: context, connection: connection)
        }
    }

    private static func backup(_ name: String, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec, level: Int,
                       env: JobEnvironment, context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let startedAt = Date()
        let clock = ContinuousClock.now
        let id = ArtefactLayout.id(startedAt: startedAt, jobID: context.id)
        let folder = BackupLayout.folder(database: name, id: id)
        let dumpName = BackupLayout.dumpName(codec)
        let dumpKey = folder + "/" + dumpName
        var systemIdentifier: String?
        if let row = try? await connection.query("SELECT system_identifier::text FROM pg_control_system()").first { systemIdentifier = row[0] }
        // A pg_dump at least as new as the server (an older one refuses it).
        let versionNumber = Int(try await connection.query("SHOW server_version_num").scalar ?? "0") ?? 0
        let pgDump = try await env.pgDump(serverVersionNumber: versionNumber, database: name)
        // Asked beside the dump, not before it.
        let pgDumpVersion = Task { try await toolVersion(pgDump) }
        _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let facts = try await connection.query("SELECT pg_export_snapshot(), current_setting('server_version'), current_database()")
        guard let snapshot = facts.first?[0], let serverVersion = facts.first?[1], let serverDatabase = facts.first?[2] else {
            throw JobError.retryable("database '\(name)': could not export a snapshot")
        }

        let (conninfo, childEnvironment) = url.childProcessArguments()
        let process = try Subprocess(
            pgDump,
            arguments: ["--format=custom", "--compress=0", "--snapshot=\(snapshot)", "--no-password", "--dbname=\(conninfo)"],
            environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 }, pipeStdout: true)
        let compressor = try Compressor(codec: codec, level: level)
        let source = DumpSource(process: process, compressor: compressor)
        context.logger.info("backup started", metadata: ["backup.id": "\(id)", "store": "\(store.url)", "codec": "\(codec)"])

        let result = try await ArtefactCommit.run(store: store, folder: folder, context: context) { commit -> (BackupManifest, JSONValue) in
            var segments: [SegmentInfo] = []
            var tables: [TableRows] = []
            do {
                // The tables are listed in the exporting transaction (the dump's snapshot) while
                // the dump streams, and their rows are counted from the dump itself as it passes:
                // the database is read once. The transaction stays open until the dump is stored.
                async let listed = TableInventory.list(connection)
                // The worker throttles what reaches Redis; a report per 256 KiB chunk is cheap.
                // Cut into objects of at most `objectLimit` bytes: S3 parts then never grow, so
                // memory is the same for a 1 GB and a 10 TB dump.
                segments = try await SegmentedWrite.put(store, key: dumpKey, from: source.stream { raw, stored in
                    await context.progress(JobProgress(bytes: raw, message: "\(mib(raw)) dumped, \(mib(stored)) stored"))
                }, limit: objectLimit)
                commit.record(segments.map(\.key))
                let fromDump = source.rowCounter.rows
                if fromDump == nil {
                    context.logger.warning("rows not counted from the dump; counting in SQL, in the same snapshot", metadata: [
                        "reason": "\(source.rowCounter.failure ?? "unknown")",
                    ])
                }
                for table in try await listed {
                    // A table the dump holds no data for (none should be) is counted in SQL.
                    var rows = fromDump?[table]
                    if rows == nil { rows = try await TableInventory.count(connection, table) }
                    tables.append(TableRows(schema: table.schema, name: table.name, rows: rows ?? 0))
                }
                _ = try await connection.execute("COMMIT")
            } catch {
                source.stop()
                process.kill(SIGKILL)
                _ = await process.wait()
                throw error
            }
            let storedSize = segments.reduce(0) { $0 + $1.size }
            guard let first = segments.first, storedSize == source.storedBytes else {
                throw JobError.retryable("\(store.url)/\(dumpKey) holds \(storedSize) bytes after upload, \(source.storedBytes) were sent")
            }
            // The first object carries the raw size of the whole stream (one compressed stream,
            // cut into objects at byte boundaries).
            let objects = segments.enumerated().map { i, segment in
                ManifestObject(name: commit.name(segment.key), size: segment.size, sha256: segment.sha256, rawSize: i == 0 ? source.rawBytes : 0)
            }
            var manifest = BackupManifest(
                format: BackupManifest.currentFormat, id: id, database: name, codec: codec, level: level,
                startedAt: startedAt, finishedAt: Date(),
                job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken),
                source: .init(database: serverDatabase, server: url.endpoint, serverVersion: serverVersion, systemIdentifier: systemIdentifier),
                pgDumpVersion: try await pgDumpVersion.value,
                objects: objects,
                tables: tables)
            manifest.encryption = store.encryptionKeyFingerprint
            let seconds = (ContinuousClock.now - clock).seconds
            return (manifest, try Result(
                id: id, database: name, store: store.url, key: dumpKey, codec: codec.rawValue, size: source.storedBytes, rawSize: source.rawBytes,
                sha256: first.sha256, objects: objects.count, tables: tables.count, seconds: (seconds * 1000).rounded() / 1000).json)
        }
        context.logger.info("backup done", metadata: [
            "backup.id": "\(id)", "bytes.raw": "\(source.rawBytes)", "bytes.stored": "\(source.storedBytes)",
            "seconds": "\(String(format: "%.2f", (ContinuousClock.now - clock).seconds))",
        ])
        return result
    }

    /// What a backup reports: where it is, its sizes and checksum.
    public struct Result: JobResult {
        public var id: String
        public var database: String
        public var store: String
        /// The first data object's key.
        public var key: String
        public var codec: String
        /// Bytes stored, and before compression.
        public var size: Int64
        public var rawSize: Int64
        public var sha256: String
        public var objects: Int
        public var tables: Int
        public var seconds: Double
    }

    /// `pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)` → `15.8 (Debian 15.8-0+deb12u1)`.
    static func toolVersion(_ tool: String) async throws -> String { try await PostgresTools.versionText(tool) }
}

/// `12.3 MiB`, to a tenth (plain integer arithmetic: this runs once per chunk).
func mib(_ bytes: Int64) -> String {
    let tenths = (max(0, bytes) * 10 + 524_288) / 1_048_576
    return "\(tenths / 10).\(tenths % 10) MiB"
}
