import Codecs
import Foundation

/// What makes a snapshot a snapshot: written last, under the lease. It holds every chosen
/// table's rows (binary COPY, one consistent snapshot), the sequences they own, the shape
/// of each table (so a rollback can refuse a schema that moved on) and the migration
/// version the database was at.
public struct SnapshotManifest: ArtefactManifest, Equatable {
    /// v2: a table's shape also lists its user triggers (v1 did not: compared without them).
    public static let currentFormat = "dbq.snapshot.v2"
    public static var family: String { "snapshot" }
    public static var root: String { ArtefactLayout.snapshotsRoot }

    public var format: String
    public var id: String
    public var database: String
    public var label: String?
    public var startedAt: Date
    public var finishedAt: Date
    public var job: JobStamp
    public var serverVersion: String
    public var codec: Codec
    /// The newest applied migration (`dbq_migrations`), nil when none is tracked.
    public var migrationVersion: String?
    /// SHA-256 over every table's shape: equal digests, equal schemas.
    public var schemaDigest: String
    /// In dependency order (referenced tables first): the order a rollback loads them.
    public var tables: [Table]
    public var sequences: [Sequence]
    /// The fingerprint of the key its objects are encrypted with (nil: stored in clear).
    public var encryption: String?

    public struct Table: Codable, Sendable, Equatable {
        public var schema: String
        public var name: String
        public var rows: Int64
        /// The columns the rows hold, in COPY order (generated columns are not stored).
        public var columns: [String]
        /// The table's shape: one line per column and constraint (`SchemaShape`).
        public var shape: [String]
        /// The rows as binary COPY, compressed, in order (one stream cut into objects).
        public var objects: [ManifestObject]
        public var qualifiedName: String { "\(schema).\(name)" }
    }

    public struct Sequence: Codable, Sendable, Equatable {
        /// As `regclass` prints it (quoted where needed).
        public var name: String
        /// The table and column that own it.
        public var table: String
        public var column: String
        public var lastValue: Int64
        public var isCalled: Bool
    }

    public var rows: Int64 { tables.reduce(0) { $0 + $1.rows } }
    public var size: Int64 { tables.reduce(0) { $0 + $1.objects.reduce(0) { $0 + $1.size } } }
}

/// `snapshots/<database>/<UTC time>-<job id>/`: one object per table and the manifest.
public enum SnapshotLayout {
    public static func folder(database: String, id: String) -> String { SnapshotCatalog.folder(database: database, id: id) }
    public static func objectName(_ table: String, codec: Codec) -> String {
        codec == .none ? "\(table).bin" : "\(table).bin.\(codec.fileExtension)"
    }
}

public typealias SnapshotCatalog = ArtefactCatalog<SnapshotManifest>
