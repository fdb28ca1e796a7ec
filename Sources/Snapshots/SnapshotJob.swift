import Backups
import Codecs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue
import Synchronization

/// `snapshot`: the chosen tables' rows read in one snapshot with binary `COPY`, with the
/// sequences they own, their shapes and the migration version, written like backups (the
/// objects, then the manifest last under the lease).
public struct SnapshotJob: Job {
    public static let kind = "snapshot"
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        /// `schema.table` (or a name in `public`); or `schema` for all of a schema's tables.
        public var tables: [String]?
        public var schema: String?
        public var label: String?
        public var codec: String?

        public init(database: String, storage: String? = nil, tables: [String]? = nil, schema: String? = nil, label: String? = nil, codec: String? = nil) {
            self.database = database
            self.storage = storage
            self.tables = tables
            self.schema = schema
            self.label = label
            self.codec = codec
        }
    }

    let environment: @Sendable () throws -> BackupEnvironment

    public init(environment: @escaping @Sendable () throws -> BackupEnvironment) {
        self.environment = environment
    }

    public func run(_ payload: Payload, context: JobContext) async throws -> JSONValue? {
        let env = try environment()
        let codec: Codec
        do { codec = try Codec(parsing: payload.codec ?? "zstd") } catch { throw BackupError.permanent("\(error)") }
        if (payload.tables ?? []).isEmpty && payload.schema == nil {
            throw BackupError.permanent("a snapshot needs --tables a,b or --schema NAME")
        }
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let storeURL = store.url
        let limit = env.objectLimit(payload.storage)
        let manifest = try await env.locks.withDatabaseLock(payload.database, kind: Self.kind, owner: "\(context.id)#\(context.fencingToken)",
                                                            wait: env.lockWait) {
            try await Self.snapshot(payload, url: url, store: store, objectLimit: limit, codec: codec, context: context)
        }
        return .object([
            "id": .string(manifest.id), "database": .string(manifest.database), "store": .string(storeURL),
            "folder": .string(SnapshotLayout.folder(database: manifest.database, id: manifest.id)),
            "tables": .number(Double(manifest.tables.count)), "rows": .number(Double(manifest.rows)), "bytes": .number(Double(manifest.size)),
            "rowsPerTable": .object(Dictionary(uniqueKeysWithValues: manifest.tables.map { ($0.qualifiedName, .number(Double($0.rows))) })),
            "sequences": .number(Double(manifest.sequences.count)),
            "migrationVersion": manifest.migrationVersion.map(JSONValue.string) ?? .null,
        ])
    }

    /// Takes the snapshot and returns its manifest (written).
    public static func snapshot(_ payload: Payload, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec,
                                context: JobContext) async throws -> SnapshotManifest {
        let startedAt = Date()
        let id = BackupLayout.backupID(startedAt: startedAt, jobID: context.id)
        let folder = SnapshotLayout.folder(database: payload.database, id: id)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(url.raw, logger: context.logger, applicationName: "dbq snapshot")
        } catch {
            throw classifyConnect(error, database: payload.database)
        }
        defer { Task { await connection.close() } }
        _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let serverVersion = try await connection.query("SELECT current_setting('server_version')").scalar ?? "?"
        let tables = try await SnapshotQueries.resolve(tables: payload.tables, schema: payload.schema, database: payload.database, connection: connection)
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
            let manifest = SnapshotManifest(
                format: SnapshotManifest.currentFormat, id: id, database: payload.database, label: payload.label, startedAt: startedAt,
                finishedAt: Date(), job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken),
                serverVersion: serverVersion, codec: codec, migrationVersion: version, schemaDigest: SchemaShape.digest(shapes),
                tables: written, sequences: sequences)
            return (manifest, manifest)
        }
    }
}

/// Compresses a byte stream as it is read, counting the bytes before compression.
final class CompressingPipe: @unchecked Sendable {
    // @unchecked Sendable: pulled by one consumer, one chunk at a time.
    private var source: ByteStream.AsyncIterator
    private let compressor: Compressor
    private var finished = false
    private(set) var rawBytes: Int64 = 0

    init(source: ByteStream, compressor: Compressor) {
        self.source = source.makeAsyncIterator()
        self.compressor = compressor
    }

    func stream() -> ByteStream {
        ByteStream { [self] in
            while !finished {
                var iterator = source
                let chunk = try await iterator.next()
                source = iterator
                guard let chunk else {
                    finished = true
                    let tail = try compressor.finish()
                    return tail.isEmpty ? nil : tail
                }
                rawBytes += Int64(chunk.count)
                let out = try compressor.compress(chunk)
                if !out.isEmpty { return out }
            }
            return nil
        }
    }
}
