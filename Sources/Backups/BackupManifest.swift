import Codecs
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

/// Which attempt of which job wrote an artefact.
public struct JobStamp: Codable, Sendable, Equatable {
    public var id: String
    public var attempt: Int
    public var fencingToken: Int64

    public init(id: String, attempt: Int, fencingToken: Int64) {
        self.id = id
        self.attempt = attempt
        self.fencingToken = fencingToken
    }
}

/// One data object: its name in the backup's folder, stored size and SHA-256.
public struct ManifestObject: Codable, Sendable, Equatable {
    public var name: String
    public var size: Int64
    public var sha256: String
    /// Bytes before compression: of the whole dump on the first object, 0 on the objects
    /// it continues in (one compressed stream cut at byte boundaries).
    public var rawSize: Int64

    public init(name: String, size: Int64, sha256: String, rawSize: Int64) {
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.rawSize = rawSize
    }
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

/// JSON as dbq writes manifests: sorted keys, ISO 8601 times with milliseconds.
public enum ManifestCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTime(date))
        }
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTime(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an ISO 8601 time")
            }
            return date
        }
        return decoder
    }()

    public static func formatTime(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    public static func parseTime(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
