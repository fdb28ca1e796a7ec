import Codecs
import Crypto
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// Where base backups live: `basebackups/<database>/<UTC time>-<job id>/`.
public enum BaseBackupLayout {
    public static let root = "basebackups"
    public static func folder(database: String, id: String) -> String { "\(root)/\(database)/\(id)" }
    public static let dataName = "base.tar.zst"
}

/// A physical backup's manifest: written last, under the lease. Without it the folder is
/// not a backup.
public struct BaseBackupManifest: Codable, Sendable, Equatable {
    public static let currentFormat = "dbq.basebackup.v1"
    public var format: String
    public var id: String
    public var database: String
    public var startedAt: Date
    public var finishedAt: Date
    public var job: JobStamp
    public var server: String
    public var serverVersion: String
    public var systemIdentifier: String?
    /// Where the backup starts and ends in the WAL, and on which timeline.
    public var timeline: UInt32
    public var startLSN: String
    public var stopLSN: String
    /// The WAL files a restore needs before the server is consistent (first and last).
    public var walStart: String
    public var walStop: String
    public var walSegmentBytes: UInt64
    /// The tar of the data directory (`pg_basebackup -Ft`), compressed, in order.
    public var objects: [ManifestObject]
    /// SHA-256 of PostgreSQL's own `backup_manifest` inside the tar (checked by
    /// `pg_verifybackup` after a restore).
    public var backupManifestSHA256: String
    /// The fingerprint of the key its objects are encrypted with (nil: stored in clear).
    public var encryption: String?
    public var storedSize: Int64 { objects.reduce(0) { $0 + $1.size } }
}

/// `basebackup`: `pg_basebackup -Ft -X none` streamed through zstd and SHA-256 into the
/// store, cut into objects like a dump; the WAL it needs comes from the archive (`dbq wal
/// push`), which must be on. The manifest, last, names the start and stop LSN, the
/// timeline and the WAL files a restore needs.
public struct BaseBackupJob: ArtefactJob {
    public static let kind = "basebackup"

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        public var level: Int?
        /// pg_basebackup's `--max-rate` (`32M`, `500k`): the most it reads per second, to
        /// spare a busy server's disks.
        public var maxRate: String?
        public init(database: String, storage: String? = nil, level: Int? = nil, maxRate: String? = nil) {
            self.database = database
            self.storage = storage
            self.level = level
            self.maxRate = maxRate
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let level = try JobError.payload { try Codec.zstd.checkedLevel(payload.level) }
        if let rate = payload.maxRate, rate.range(of: #"^[0-9]+[kKmM]?$"#, options: .regularExpression) == nil {
            throw JobError.permanent("max rate '\(rate)' is not a rate like 32M or 500k (bytes per second)")
        }
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let objectLimit = env.objectLimit(payload.storage)
        let lock = BaseBackupLayout.lockName(database: payload.database, store: store.url)
        let owner = "\(context.id)#\(context.fencingToken)"
        // The database's read lock, then the base backups' (their retention waits).
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await env.locks.withLock(lock, mode: .shared, owner: owner, wait: env.lockWait) {
                try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq basebackup", logger: context.logger) { connection in
                    try await Self.backup(payload.database, url: url, store: store, objectLimit: objectLimit, level: level, maxRate: payload.maxRate,
                                          env: env, context: context, connection: connection)
                }
            }
        }
    }

    static func backup(_ name: String, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, level: Int,
                       maxRate: String?, env: JobEnvironment, context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let startedAt = Date()
        let clock = ContinuousClock.now
        let facts = try await connection.query("""
            SELECT current_setting('archive_mode'), current_setting('server_version'), current_setting('server_version_num'),
                   (SELECT system_identifier::text FROM pg_control_system()), current_setting('wal_segment_size')
            """)
        guard let row = facts.first, let archiveMode = row[0], let serverVersion = row[1] else {
            throw JobError.retryable("database '\(name)': could not read the server's settings")
        }
        guard archiveMode != "off" else {
            throw JobError.permanent("database '\(name)': archive_mode is off, and a base backup without its WAL archived cannot be restored; set archive_mode = on and archive_command = 'dbq wal push %p --database \(name)' (a restart), then back up")
        }
        let segmentBytes = UInt64(parseSize(row[4] ?? "16MB") ?? (16 << 20))
        let id = ArtefactLayout.id(startedAt: startedAt, jobID: context.id)
        let folder = BaseBackupLayout.folder(database: name, id: id)
        let dataKey = folder + "/" + BaseBackupLayout.dataName
        let tool = try await env.pgTool("pg_basebackup", serverVersionNumber: Int(row[2] ?? "0") ?? 0, database: name)
        let (conninfo, childEnvironment) = url.childProcessArguments()
        let process = try Subprocess(tool, arguments: ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "--no-password", "--dbname=\(conninfo)"]
                                        + (maxRate.map { ["--max-rate=\($0)"] } ?? []),
                                     environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 }, pipeStdout: true)
        let tap = TarMembers(wanted: ["backup_label", "backup_manifest"])
        let source = DumpSource(process: process, compressor: try Compressor(codec: .zstd, level: level), tool: "pg_basebackup", tap: tap)
        context.logger.info("base backup started", metadata: ["basebackup.id": "\(id)", "store": "\(store.url)"])
        return try await ArtefactCommit.run(store: store, folder: folder, context: context) { commit -> (BaseBackupManifest, JSONValue) in
            let segments: [SegmentInfo]
            do {
                segments = try await SegmentedWrite.put(store, key: dataKey, from: source.stream { raw, stored in
                    await context.progress(JobProgress(bytes: raw, message: "\(mib(raw)) read, \(mib(stored)) stored"))
                }, limit: objectLimit)
                commit.record(segments.map(\.key))
            } catch {
                source.stop()
                process.kill(SIGKILL)
                _ = await process.wait()
                throw error
            }
            guard let label = tap.members["backup_label"].map({ String(decoding: $0, as: UTF8.self) }),
                  let start = BackupLabel(label), let pgManifest = tap.members["backup_manifest"],
                  let range = BackupManifestWAL(pgManifest) else {
                throw JobError.retryable("pg_basebackup's tar has no readable backup_label and backup_manifest (is it PostgreSQL 13 or later?)")
            }
            let objects = segments.enumerated().map { i, s in
                ManifestObject(name: commit.name(s.key), size: s.size, sha256: s.sha256, rawSize: i == 0 ? source.rawBytes : 0)
            }
            var manifest = BaseBackupManifest(
                format: BaseBackupManifest.currentFormat, id: id, database: name, startedAt: startedAt, finishedAt: Date(),
                job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken),
                server: url.endpoint, serverVersion: serverVersion, systemIdentifier: row[3],
                timeline: start.timeline, startLSN: start.lsn, stopLSN: range.end,
                walStart: start.file, walStop: WALPosition.file(lsn: range.end, timeline: start.timeline, segmentBytes: segmentBytes) ?? start.file,
                walSegmentBytes: segmentBytes, objects: objects, backupManifestSHA256: SigV4Signer.hex(SHA256.hash(data: pgManifest)))
            manifest.encryption = store.encryptionKeyFingerprint
            let seconds = (ContinuousClock.now - clock).seconds
            return (manifest, try Result(id: id, database: name, store: store.url, size: manifest.storedSize, rawSize: source.rawBytes,
                                         startLSN: start.lsn, stopLSN: range.end, timeline: start.timeline, walStart: manifest.walStart,
                                         walStop: manifest.walStop, seconds: (seconds * 1000).rounded() / 1000).json)
        }
    }

    public struct Result: JobResult {
        public var id: String
        public var database: String
        public var store: String
        public var size: Int64
        public var rawSize: Int64
        public var startLSN: String
        public var stopLSN: String
        public var timeline: UInt32
        public var walStart: String
        public var walStop: String
        public var seconds: Double
    }

    /// `16MB` → 16777216 (`SHOW wal_segment_size`).
    static func parseSize(_ text: String) -> Int? {
        let digits = text.prefix { $0.isNumber }
        guard let n = Int(digits) else { return nil }
        switch text.dropFirst(digits.count).uppercased() {
        case "KB": return n << 10
        case "MB": return n << 20
        case "GB": return n << 30
        case "", "B": return n
        default: return nil
        }
    }
}

/// `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)` and `START TIMELINE: 1`
/// from a `backup_label`.
struct BackupLabel {
    var lsn: String
    var file: String
    var timeline: UInt32

    init?(_ text: String) {
        var lsn: String?, file: String?, timeline: UInt32?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("START WAL LOCATION: ") {
                let parts = line.dropFirst("START WAL LOCATION: ".count).split(separator: " ")
                lsn = parts.first.map(String.init)
                if parts.count >= 3 { file = String(parts[2].dropLast()) }
            } else if line.hasPrefix("START TIMELINE: ") {
                timeline = UInt32(line.dropFirst("START TIMELINE: ".count))
            }
        }
        guard let lsn, let file, let timeline else { return nil }
        self.lsn = lsn
        self.file = file
        self.timeline = timeline
    }
}

/// The WAL range of PostgreSQL's `backup_manifest` (`"WAL-Ranges": [{"Timeline": 1,
/// "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]`).
struct BackupManifestWAL {
    var end: String

    init?(_ bytes: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let ranges = object["WAL-Ranges"] as? [[String: Any]], let last = ranges.last, let end = last["End-LSN"] as? String else { return nil }
        self.end = end
    }
}

/// LSN arithmetic (pure).
public enum WALPosition {
    /// `0/2000100` → 33554688.
    public static func parse(_ lsn: String) -> UInt64? {
        let parts = lsn.split(separator: "/")
        guard parts.count == 2, let hi = UInt64(parts[0], radix: 16), let lo = UInt64(parts[1], radix: 16) else { return nil }
        return hi << 32 | lo
    }

    /// The WAL file holding `lsn` on `timeline`.
    public static func file(lsn: String, timeline: UInt32, segmentBytes: UInt64) -> String? {
        guard let position = parse(lsn) else { return nil }
        return WALFileName.segment(timeline: timeline, number: position / segmentBytes, segmentBytes: segmentBytes).name
    }
}

extension BaseBackupManifest: ArtefactManifest {
    public static let family = "base backup"
    public static let root = BaseBackupLayout.root
}

public typealias BaseBackupCatalog = ArtefactCatalog<BaseBackupManifest>
public typealias BaseBackupEntry = ArtefactCatalog<BaseBackupManifest>.Entry
