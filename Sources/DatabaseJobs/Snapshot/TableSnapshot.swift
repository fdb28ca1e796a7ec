import Codecs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue
import Synchronization

/// What a snapshot covers: the `snapshot` job's payload, and what import and migrate ask
/// for before they change tables (snapshot-before-change).
public struct SnapshotRequest: Sendable {
    public var database: String
    public var tables: [String]?
    public var schema: String?
    public var label: String?

    public init(database: String, tables: [String]? = nil, schema: String? = nil, label: String? = nil) {
        self.database = database
        self.tables = tables
        self.schema = schema
        self.label = label
    }
}

/// Takes a snapshot of tables: their rows read in one snapshot with binary `COPY`, with
/// the sequences they own, their shapes and the migration version, committed like every
/// artefact (the objects, then the manifest last under the lease). The `snapshot` job and
/// the families that snapshot before they change tables (import, migrate) share it.
public enum TableSnapshot {
    /// How long a snapshot waits to lock its tables (ACCESS SHARE waits only behind an
    /// exclusive lock) before it gives up for a retry.
    public static let lockTimeout: Duration = .seconds(10)

    /// Takes the snapshot and returns its manifest (written).
    public static func take(_ request: SnapshotRequest, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec,
                                context: JobContext) async throws -> SnapshotManifest {
        try await DatabaseScope.withConnection(url, database: request.database, application: "dbq snapshot", logger: context.logger) { connection in
            try await take(request, url: url, store: store, objectLimit: objectLimit, codec: codec, context: context, connection: connection)
        }
    }

    private static func take(_ request: SnapshotRequest, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec,
                                context: JobContext, connection: PostgresConnection) async throws -> SnapshotManifest {
        let startedAt = Date()
        let id = ArtefactLayout.id(startedAt: startedAt, jobID: context.id)
        let folder = SnapshotLayout.folder(database: request.database, id: id)
        // The tables first, outside the snapshot: they are locked before it is taken.
        let planned = try await SnapshotQueries.resolve(tables: request.tables, schema: request.schema, database: request.database, connection: connection)
        _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        // TRUNCATE (and ALTER TABLE … rewrites) do not respect older snapshots: a table
        // truncated after the snapshot began and before its COPY would be saved empty. So,
        // as pg_dump does, every table is locked ACCESS SHARE first (a TRUNCATE then waits
        // for the snapshot's end); LOCK takes no snapshot, so the transaction's snapshot is
        // taken after every lock is held, and sees any TRUNCATE that committed before.
        _ = try await connection.execute("SET LOCAL lock_timeout = '\(Int(TableSnapshot.lockTimeout.milliseconds))ms'")
        let names = try planned.map { try PostgresIdentifier.qualified(schema: $0.schema, name: $0.name) }.joined(separator: ", ")
        do {
            _ = try await connection.execute("LOCK TABLE \(names) IN ACCESS SHARE MODE")
        } catch let error as PostgresError where error.sqlState == "55P03" {
            throw JobError.retryable("could not lock the snapshot's tables within \(Int(TableSnapshot.lockTimeout.milliseconds)) ms: a session holds one of them exclusively (a TRUNCATE, an ALTER TABLE, a VACUUM FULL); retried")
        }
        let serverVersion = try await connection.query("SELECT current_setting('server_version')").scalar ?? "?"
        let tables = try await SnapshotQueries.resolve(tables: request.tables, schema: request.schema, database: request.database, connection: connection)
        guard tables.map(\.qualifiedName).sorted() == planned.map(\.qualifiedName).sorted() else {
            throw JobError.retryable("the tables to snapshot changed while they were being locked (one created or dropped); retried")
        }
        let sequences = try await SnapshotQueries.sequences(of: tables.map(\.qualifiedName), connection: connection)
        let version = try await SnapshotQueries.migrationVersion(connection)
        return try await ArtefactCommit.run(store: store, folder: folder, context: context) { commit -> (SnapshotManifest, SnapshotManifest) in
            var written: [SnapshotManifest.Table] = []
            for table in tables {
                let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
                let columns = try table.copyColumns.map { try PostgresIdentifier.quoted($0) }.joined(separator: ", ")
                let rows = Mutex(0)
                let source = connection.copyOut("COPY \(qualified) (\(columns)) TO STDOUT (FORMAT binary)", chunkSize: 1 << 20) { n in rows.withLock { $0 = n } }
                let pipe = CompressingPipe(source: source, compressor: try Compressor(codec: codec))
                let segments = try await SegmentedWrite.put(store, key: folder + "/" + SnapshotLayout.objectName(table.qualifiedName, codec: codec),
                                                            from: pipe.stream(), limit: objectLimit)
                commit.record(segments.map(\.key))
                written.append(SnapshotManifest.Table(
                    schema: table.schema, name: table.name, rows: Int64(rows.withLock { $0 }), columns: table.copyColumns, shape: table.shape,
                    objects: segments.enumerated().map { i, s in
                        ManifestObject(name: commit.name(s.key), size: s.size, sha256: s.sha256, rawSize: i == 0 ? pipe.rawBytes : 0)
                    }))
                await context.progress(JobProgress(fraction: Double(written.count) / Double(tables.count), rows: written.reduce(0) { $0 + $1.rows },
                                                   message: "\(written.count) of \(tables.count) tables"))
            }
            _ = try await connection.execute("COMMIT")
            let shapes = Dictionary(uniqueKeysWithValues: tables.map { ($0.qualifiedName, $0.shape) })
            var manifest = SnapshotManifest(
                format: SnapshotManifest.currentFormat, id: id, database: request.database, label: request.label, startedAt: startedAt,
                finishedAt: Date(), job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken),
                serverVersion: serverVersion, codec: codec, migrationVersion: version, schemaDigest: SchemaShape.digest(shapes),
                tables: written, sequences: sequences)
            manifest.encryption = store.encryptionKeyFingerprint
            return (manifest, manifest)
        }
    }
}
