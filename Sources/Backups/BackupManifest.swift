import Codecs
import DatabaseJobs
import Foundation

/// What makes a backup a backup: written last, after every data object, while the job
/// still holds its lease. Data without a manifest is not a backup.
public struct BackupManifest: Codable, Sendable, Equatable {
    public static let currentFormat = "dbq.backup.v1"

    public var format: String
    /// `<UTC time>-<job id>`: the folder's name.
    public var id: String
    /// The configured database name (`main`), which names the folder.
    public var database: String
    public var codec: Codec
    public var level: Int
    public var startedAt: Date
    public var finishedAt: Date
    public var job: JobStamp
    public var source: Source
    public var pgDumpVersion: String
    public var objects: [ManifestObject]
    /// Rows per table in the dump's snapshot (read from the dump as it streamed, or counted in SQL).
    public var tables: [TableRows]
    /// The fingerprint of the key its objects are encrypted with (nil: stored in clear).
    public var encryption: String?

    public struct Source: Codable, Sendable, Equatable {
        /// The database's name on its server.
        public var database: String
        /// `host:port` (never the password).
        public var server: String
        public var serverVersion: String
        /// `pg_control_system().system_identifier` when the role may read it.
        public var systemIdentifier: String?
    }

    /// The first data object (`dump.zst`) of the backup; a long dump continues in
    /// `dump.zst.1`, `dump.zst.2`, … (all in `objects`, in order).
    public var dump: ManifestObject? { objects.first }
    /// Bytes stored, over every data object.
    public var storedSize: Int64 { objects.reduce(0) { $0 + $1.size } }
}

public struct TableRows: Codable, Sendable, Equatable, Hashable {
    public var schema: String
    public var name: String
    public var rows: Int64

    public init(schema: String, name: String, rows: Int64) {
        self.schema = schema
        self.name = name
        self.rows = rows
    }

    public var qualifiedName: String { "\(schema).\(name)" }
}

/// The outcome of restoring a backup into a scratch database, written beside its manifest.
public struct Verification: Codable, Sendable, Equatable {
    public static let currentFormat = "dbq.verification.v1"
    public enum Outcome: String, Codable, Sendable { case passed, failed }

    public var format: String
    public var backup: String
    public var verifiedAt: Date
    public var outcome: Outcome
    public var mismatches: [String]
    public var seconds: Double
    public var job: JobStamp
}
