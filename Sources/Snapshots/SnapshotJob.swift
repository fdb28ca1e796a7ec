import Codecs
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue
import Synchronization

/// `snapshot`: the chosen tables' rows read in one snapshot with binary `COPY`, with the
/// sequences they own, their shapes and the migration version, written like backups (the
/// objects, then the manifest last under the lease).
public struct SnapshotJob: ArtefactJob {
    public static let kind = "snapshot"

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

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let codec = try Codec.payload(payload.codec)
        if (payload.tables ?? []).isEmpty && payload.schema == nil {
            throw JobError.permanent("a snapshot needs --tables a,b or --schema NAME")
        }
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let storeURL = store.url
        let limit = env.objectLimit(payload.storage)
        let manifest = try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await TableSnapshot.take(SnapshotRequest(database: payload.database, tables: payload.tables, schema: payload.schema, label: payload.label),
                                         url: url, store: store, objectLimit: limit, codec: codec, context: context)
        }
        return try Result(id: manifest.id, database: manifest.database, store: storeURL,
                          folder: SnapshotLayout.folder(database: manifest.database, id: manifest.id), tables: manifest.tables.count,
                          rows: manifest.rows, bytes: manifest.size,
                          rowsPerTable: Dictionary(uniqueKeysWithValues: manifest.tables.map { ($0.qualifiedName, $0.rows) }),
                          sequences: manifest.sequences.count, migrationVersion: manifest.migrationVersion).json
    }

    /// What a snapshot reports: where it is, its rows per table, the migration version.
    public struct Result: JobResult {
        public var id: String
        public var database: String
        public var store: String
        public var folder: String
        public var tables: Int
        public var rows: Int64
        public var bytes: Int64
        public var rowsPerTable: [String: Int64]
        public var sequences: Int
        /// The newest applied migration, `null` when none is tracked.
        @ExplicitNull public var migrationVersion: String?
    }
}
