import Codecs
import Crypto
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `pitr-restore`: a base backup restored into an empty data directory on the worker's
/// host, with recovery set to replay the archived WAL (fetched through `dbq wal fetch`) up
/// to a target — a time, an LSN, the end of the archive, or the backup's own end — and
/// promote. With `start`, the server is started on `port` and the job waits until it has
/// reached the target and been promoted.
public struct PITRRestoreJob: DatabaseJob {
    public static let kind = "pitr-restore"
    public static var lockClass: DatabaseLockClass? { nil }
    public static var defaultMaxAttempts: Int { 1 }
    public static var defaultTimeout: Duration { .seconds(12 * 3600) }

    public struct Payload: Codable, Sendable {
        /// The configured database whose base backups and WAL archive are read.
        public var database: String
        public var storage: String?
        /// A base backup id (or prefix); the newest one that ends before the target if nil.
        public var basebackup: String?
        /// Recovery target: a time (`2026-12-07 10:00:00+00`), an LSN, or the end of the
        /// archive (`latest`); none of them: the backup's own end (`immediate`).
        public var to: String?
        public var lsn: String?
        public var latest: Bool?
        public var dataDirectory: String
        public var port: Int?
        public var start: Bool?
        /// The user who owns the data directory and runs the server (default: this
        /// process's user, or `postgres` when that is root, which PostgreSQL refuses).
        public var runAs: String?
        /// The dbq executable the restored server's restore_command runs (default: this one).
        public var dbq: String?
        /// The configuration file that restore_command passes (default: the worker's).
        public var config: String?
        /// Which timeline recovery follows: `latest` (default: the newest the archive's
        /// history files lead to, as after an earlier restore was promoted), `current` (the
        /// base backup's), or a number.
        public var timeline: String?
        /// Segments the restore command fetches ahead, in parallel (`dbq wal fetch --prefetch`).
        public var prefetch: Int?

        public init(database: String, storage: String? = nil, basebackup: String? = nil, to: String? = nil, lsn: String? = nil,
                    latest: Bool? = nil, dataDirectory: String, port: Int? = nil, start: Bool? = nil, runAs: String? = nil,
                    dbq: String? = nil, config: String? = nil, timeline: String? = nil, prefetch: Int? = nil) {
            self.database = database
            self.storage = storage
            self.basebackup = basebackup
            self.to = to
            self.lsn = lsn
            self.latest = latest
            self.dataDirectory = dataDirectory
            self.port = port
            self.start = start
            self.runAs = runAs
            self.dbq = dbq
            self.config = config
            self.timeline = timeline
            self.prefetch = prefetch
        }
    }

    public init() {}

    /// The recovery target, decided from the payload (pure).
    public enum Target: Sendable, Equatable {
        case time(String), lsn(String), latest, immediate

        public static func from(_ p: Payload) throws(JobError) -> Target {
            let given = [p.to != nil, p.lsn != nil, p.latest == true].filter { $0 }.count
            guard given <= 1 else { throw .permanent("give one recovery target: --to TIME, --lsn LSN or --latest") }
            if let lsn = p.lsn {
                guard WALPosition.parse(lsn) != nil else { throw .permanent("--lsn '\(lsn)' is not an LSN (like 0/3000060)") }
                return .lsn(lsn)
            }
            if let to = p.to {
                guard !to.contains("'") else { throw .permanent("--to '\(to)' is not a time") }
                return .time(to)
            }
            return p.latest == true ? .latest : .immediate
        }

        /// The `postgresql.auto.conf` lines that say it.
        var settings: [String] {
            switch self {
            case .time(let t): ["recovery_target_time = '\(t)'"]
            case .lsn(let l): ["recovery_target_lsn = '\(l)'"]
            case .latest: []
            case .immediate: ["recovery_target = 'immediate'"]
            }
        }
    }

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let target = try Target.from(payload)
        if let timeline = payload.timeline, timeline != "latest", timeline != "current", UInt32(timeline) == nil {
            throw JobError.permanent("timeline '\(timeline)' is not latest, current or a number")
        }
        let store = try env.store(payload.storage).store
        let directory = payload.dataDirectory
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: directory), !existing.isEmpty {
            throw JobError.permanent("data directory \(directory) is not empty (\(existing.count) entries): a restore writes into an empty or new directory only; nothing was changed")
        }
        let catalog = try await BaseBackupCatalog.load(store, database: payload.database)
        let chosen = try await Self.choose(catalog, payload: payload, target: target, env: env)
        try await Self.checkTimelines(chosen.manifest, timeline: payload.timeline ?? "latest", archive: WALArchive(store: store, database: payload.database))
        let runAs = payload.runAs ?? (getuid() == 0 ? "postgres" : nil)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        await context.progress(JobProgress(message: "restoring base backup \(chosen.manifest.id)"))
        let clock = ContinuousClock.now
        try await Self.unpack(chosen, store: store, into: directory, context: context)
        let tools = try await Self.tools(chosen.manifest, env: env)
        // PostgreSQL's own manifest, checked file by file: every file there, none extra,
        // each of its size (the WAL comes later, from the archive). Not each file's CRC
        // again: the tar they came from was checked against its SHA-256 as it unpacked.
        let verify = try Subprocess(tools.verify, arguments: ["--no-parse-wal", "--skip-checksums", "--quiet", directory], environment: ProcessInfo.processInfo.environment)
        guard await verify.wait() == 0 else {
            throw JobError.permanent("pg_verifybackup found the restored files differ from the backup's manifest: \(DumpSource.lastLines(verify.standardError)); the data directory \(directory) is left for inspection")
        }
        try Self.configureRecovery(directory, payload: payload, target: target, env: env)
        if let runAs { try Self.chown(directory, to: runAs) }
        let unpacked = (ContinuousClock.now - clock).seconds
        var result = Result(database: payload.database, basebackup: chosen.manifest.id, dataDirectory: directory, target: "\(target)",
                            unpackSeconds: (unpacked * 1000).rounded() / 1000)
        if payload.start == true {
            guard let port = payload.port else { throw JobError.permanent("--start needs --port (the restored server's port)") }
            try await Self.startAndWait(directory, port: port, runAs: runAs, pgCtl: tools.pgCtl, env: env, payload: payload, context: context, result: &result)
        }
        return try result.json
    }

    public struct Result: JobResult {
        public var database: String
        public var basebackup: String
        public var dataDirectory: String
        public var target: String
        public var unpackSeconds: Double
        public var started: Bool = false
        public var recoverySeconds: Double?
        public var timeline: String?
        public var lsn: String?
    }

    static func choose(_ catalog: BaseBackupCatalog, payload: Payload, target: Target, env: JobEnvironment) async throws -> BaseBackupEntry {
        if let id = payload.basebackup {
            let matches = catalog.entries.filter { $0.manifest.id == id || $0.manifest.id.hasPrefix(id) || $0.manifest.job.id == id }
            guard matches.count == 1, let entry = matches.first else {
                throw JobError.permanent(matches.isEmpty ? "no base backup '\(id)' of '\(payload.database)'; dbq basebackups list shows them"
                                                         : "'\(id)' names \(matches.count) base backups; give more of the id")
            }
            return entry
        }
        let candidates: [BaseBackupEntry]
        switch target {
        case .time(let text):
            guard let at = Self.parseTime(text) else {
                throw JobError.permanent("--to '\(text)' is not a time dbq can read (use 2026-12-07 10:00:00+00 or ISO 8601 with a zone)")
            }
            candidates = catalog.entries.filter { $0.manifest.finishedAt <= at }
        case .lsn(let lsn):
            let position = WALPosition.parse(lsn) ?? 0
            candidates = catalog.entries.filter { (WALPosition.parse($0.manifest.stopLSN) ?? .max) <= position }
        case .latest, .immediate:
            candidates = catalog.entries
        }
        guard let newest = candidates.max(by: { $0.manifest.finishedAt < $1.manifest.finishedAt }) else {
            throw JobError.permanent("no base backup of '\(payload.database)' ends before the target\(catalog.entries.isEmpty ? " (there are none: dbq push basebackup --database \(payload.database))" : "; the oldest ends at \(catalog.entries.map(\.manifest.finishedAt).min()!)")")
        }
        return newest
    }

    /// Every timeline the restore would follow, from the backup's to the target one, must
    /// have the segment holding its branch point archived: without it PostgreSQL replays
    /// the parent's copy of that segment past the branch (seen here), and the restore
    /// holds writes that never happened on the timeline asked for. Refused, named.
    static func checkTimelines(_ manifest: BaseBackupManifest, timeline: String, archive: WALArchive) async throws {
        guard timeline != "current" else { return }
        let histories = try await archive.list().filter { $0.file.kind == .history }
        let target: UInt32 = UInt32(timeline) ?? (histories.map(\.file.timeline).max() ?? manifest.timeline)
        guard target > manifest.timeline else { return }
        guard let history = try await archive.fetch(WALFileName(String(format: "%08X.history", target))!) else {
            throw JobError.permanent("timeline \(target) has no history file in the archive; restore with --timeline current, or archive 00000\(String(format: "%03X", target)).history")
        }
        // Lines: parent timeline, switch point, reason.
        for line in String(decoding: history, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2, let parent = UInt32(fields[0]), let lsn = WALPosition.parse(String(fields[1])), parent >= manifest.timeline else { continue }
            // The child of `parent` begins at `lsn`: its copy of that segment must be archived.
            let child = history.isEmpty ? target : Self.child(of: parent, in: String(decoding: history, as: UTF8.self), target: target)
            let segment = WALFileName.segment(timeline: child, number: lsn / manifest.walSegmentBytes, segmentBytes: manifest.walSegmentBytes)
            if try await archive.find(segment) == nil {
                throw JobError.permanent("timeline \(child) branches from \(parent) at \(fields[1]), in \(segment.name), which the archive does not have yet: PostgreSQL would replay timeline \(parent)'s copy past the branch. Wait until the server on timeline \(child) has archived it (dbq wal status), or restore with --timeline current")
            }
        }
    }

    /// In a history file's chain, the timeline that follows `parent` (the target when it is the last).
    static func child(of parent: UInt32, in history: String, target: UInt32) -> UInt32 {
        let parents = history.split(separator: "\n").compactMap { line -> UInt32? in
            line.hasPrefix("#") ? nil : line.split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
        }
        guard let i = parents.firstIndex(of: parent) else { return target }
        return i + 1 < parents.count ? parents[i + 1] : target
    }

    /// `2026-12-07 10:00:00+00`, `2026-12-07T10:00:00Z`, with fractions of a second.
    static func parseTime(_ text: String) -> Date? {
        var t = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " ", with: "T")
        if t.hasSuffix("+00") || t.hasSuffix("-00") || t.range(of: #"[+-]\d\d$"#, options: .regularExpression) != nil { t += ":00" }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: t) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: t)
    }

    static func tools(_ manifest: BaseBackupManifest, env: JobEnvironment) async throws -> (verify: String, pgCtl: String) {
        let major = PostgresTools.major(versionText: manifest.serverVersion) ?? 0
        let number = major * 10000
        return (try await env.pgTool("pg_verifybackup", serverVersionNumber: number, database: manifest.database),
                try await env.pgTool("pg_ctl", serverVersionNumber: number, database: manifest.database))
    }

    /// The base backup's objects, each checked against its size and SHA-256 as it streams,
    /// decompressed into `tar -x`.
    static func unpack(_ entry: BaseBackupEntry, store: any ObjectStore, into directory: String, context: JobContext) async throws {
        let tar = try Subprocess("/usr/bin/env", arguments: ["tar", "-x", "-f", "-", "-C", directory], environment: ProcessInfo.processInfo.environment,
                                 pipeStdin: true)
        let decompressor = try Decompressor(codec: .zstd)
        var total: Int64 = 0
        do {
            for object in entry.manifest.objects {
                let key = entry.folder + "/" + object.name
                var hash = SHA256()
                var size: Int64 = 0
                for try await chunk in try await store.get(key) {
                    hash.update(data: chunk)
                    size += Int64(chunk.count)
                    try decompressor.decompress(chunk) { piece in try tar.writeStdin(piece) }
                }
                let digest = SigV4Signer.hex(hash.finalize())
                guard size == object.size, digest == object.sha256 else {
                    throw JobError.permanent("base backup object \(store.url)/\(key) is corrupt: \(size) bytes with SHA-256 \(digest.prefix(16))…, the manifest says \(object.size) bytes with \(object.sha256.prefix(16))…")
                }
                total += size
                await context.progress(JobProgress(bytes: total, message: "\(mib(total)) of \(mib(entry.manifest.storedSize)) unpacked"))
            }
            try decompressor.finish()
            tar.closeStdin()
        } catch {
            tar.closeStdin()
            tar.kill(SIGKILL)
            _ = await tar.wait()
            throw error
        }
        guard await tar.wait() == 0 else {
            throw JobError.permanent("tar could not unpack the base backup into \(directory): \(DumpSource.lastLines(tar.standardError))")
        }
    }

    /// `recovery.signal` and the recovery settings, appended to `postgresql.auto.conf`
    /// (which overrides postgresql.conf).
    static func configureRecovery(_ directory: String, payload: Payload, target: Target, env: JobEnvironment) throws {
        let dbq = payload.dbq ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "dbq"
        guard URL(fileURLWithPath: dbq).lastPathComponent == "dbq" else {
            throw JobError.permanent("the restored server's restore_command needs the dbq executable, and this process is \(dbq): give --dbq PATH")
        }
        var command = "\(dbq) wal fetch %f %p --database \(payload.database)"
        if let config = payload.config ?? env.configuration.file { command += " --config \(config)" }
        if let storage = payload.storage { command += " --storage \(storage)" }
        if let prefetch = payload.prefetch, prefetch > 1 { command += " --prefetch \(min(prefetch, 64))" }
        var lines = ["", "# dbq pitr-restore", "restore_command = '\(command.replacingOccurrences(of: "'", with: "''"))'",
                     "recovery_target_action = 'promote'", "recovery_target_timeline = '\(payload.timeline ?? "latest")'"] + target.settings
        if let port = payload.port { lines.append("port = \(port)") }
        let auto = directory + "/postgresql.auto.conf"
        let existing = (try? String(contentsOfFile: auto, encoding: .utf8)) ?? ""
        try (existing + lines.joined(separator: "\n") + "\n").write(toFile: auto, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: directory + "/recovery.signal", contents: Data())
    }

    static func chown(_ directory: String, to user: String) throws {
        let p = try Subprocess("/usr/bin/env", arguments: ["chown", "-R", "\(user):", directory], environment: ProcessInfo.processInfo.environment)
        guard p.waitBlocking() == 0 else { throw JobError.permanent("cannot give \(directory) to user \(user): \(DumpSource.lastLines(p.standardError))") }
    }

    /// The configured database's connection (its user, password, database) on the
    /// restored server at 127.0.0.1:`port`.
    static func restoredServer(_ url: PostgresConnectionString, port: Int) -> String {
        var options = url.options
        options["host"] = "127.0.0.1"
        options["port"] = "\(port)"
        options.removeValue(forKey: "hostaddr")
        return options.sorted { $0.key < $1.key }.map { "\($0.key)=\(PostgresConnectionString.quoteValue($0.value))" }.joined(separator: " ")
    }

    static func startAndWait(_ directory: String, port: Int, runAs: String?, pgCtl: String, env: JobEnvironment, payload: Payload,
                             context: JobContext, result: inout Result) async throws {
        let clock = ContinuousClock.now
        var arguments = [pgCtl, "-D", directory, "-l", directory + "/dbq-restore.log", "-w", "-t", "3600", "-o", "-p \(port) -c listen_addresses=127.0.0.1", "start"]
        if let runAs { arguments = ["runuser", "-u", runAs, "--"] + arguments }
        let start = try Subprocess("/usr/bin/env", arguments: arguments, environment: ProcessInfo.processInfo.environment)
        guard await start.wait() == 0 else {
            let log = (try? String(contentsOfFile: directory + "/dbq-restore.log", encoding: .utf8)) ?? ""
            throw JobError.permanent("the restored server did not start: \(DumpSource.lastLines(log))")
        }
        result.started = true
        // Until recovery has reached its target and promoted.
        let conninfo = try restoredServer(env.database(payload.database), port: port)
        let deadline = ContinuousClock.now + .seconds(3600)
        while ContinuousClock.now < deadline {
            if let c = try? await PostgresConnection.connect(conninfo, logger: context.logger) {
                let row = try? await c.query("SELECT pg_is_in_recovery(), (SELECT timeline_id::text FROM pg_control_checkpoint()), pg_current_wal_lsn()::text").first
                await c.close()
                if row?[0] == "f" {
                    result.timeline = row?[1]
                    result.lsn = row?[2]
                    result.recoverySeconds = ((ContinuousClock.now - clock).seconds * 1000).rounded() / 1000
                    return
                }
            }
            let log = (try? String(contentsOfFile: directory + "/dbq-restore.log", encoding: .utf8)) ?? ""
            if log.contains("FATAL") {
                throw JobError.permanent("the restored server stopped during recovery: \(DumpSource.lastLines(log.split(separator: "\n").filter { $0.contains("FATAL") || $0.contains("LOG") }.joined(separator: "\n")))")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw JobError.permanent("the restored server did not finish recovery within an hour")
    }
}

/// `verify-basebackup`: a base backup restored into a scratch directory to the point where
/// it is consistent (its own end, replaying the archived WAL it needs), started on a free
/// loopback port, asked whether it answers and is promoted, stopped and removed. A backup
/// whose WAL is missing from the archive, or whose files differ from PostgreSQL's
/// manifest, fails here rather than on the day it is needed.
public struct VerifyBaseBackupJob: DatabaseJob {
    public static let kind = "verify-basebackup"
    public static var lockClass: DatabaseLockClass? { nil }
    public static var defaultMaxAttempts: Int { 1 }
    public static var defaultTimeout: Duration { .seconds(12 * 3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        /// A base backup id or prefix (default: the newest).
        public var basebackup: String?
        public var runAs: String?
        public var dbq: String?
        public var config: String?
        public init(database: String, storage: String? = nil, basebackup: String? = nil, runAs: String? = nil, dbq: String? = nil, config: String? = nil) {
            self.database = database
            self.storage = storage
            self.basebackup = basebackup
            self.runAs = runAs
            self.dbq = dbq
            self.config = config
        }
    }

    public struct Result: JobResult {
        public var database: String
        public var basebackup: String
        public var outcome: String
        public var databases: Int
        public var seconds: Double
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let base = ProcessInfo.processInfo.environment["DBQ_STAGING_DIR"] ?? "/var/tmp"
        let scratch = "\(base)/dbq-verify-basebackup-\(context.id)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let runAs = payload.runAs ?? (getuid() == 0 ? "postgres" : nil)
        if let runAs { try PITRRestoreJob.chown(scratch, to: runAs) }
        let port = try Self.freePort()
        let clock = ContinuousClock.now
        // To the backup's own end on its own timeline: what makes it consistent, whatever
        // later restores branched off since.
        let restore = PITRRestoreJob.Payload(database: payload.database, storage: payload.storage, basebackup: payload.basebackup,
                                             dataDirectory: scratch + "/data", port: port, start: true, runAs: runAs, dbq: payload.dbq,
                                             config: payload.config, timeline: "current")
        var stopTool: String?
        defer {
            if let stopTool {
                var arguments = [stopTool, "-D", scratch + "/data", "-w", "-t", "60", "-m", "immediate", "stop"]
                if let runAs { arguments = ["runuser", "-u", runAs, "--"] + arguments }
                if let p = try? Subprocess("/usr/bin/env", arguments: arguments, environment: ProcessInfo.processInfo.environment) { _ = p.waitBlocking() }
            }
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let store = try env.store(payload.storage).store
        let catalog = try await BaseBackupCatalog.load(store, database: payload.database)
        let entry = try await PITRRestoreJob.choose(catalog, payload: restore, target: .immediate, env: env)
        stopTool = try await PITRRestoreJob.tools(entry.manifest, env: env).pgCtl
        var pinned = restore
        pinned.basebackup = entry.manifest.id
        _ = try await PITRRestoreJob().run(pinned, in: env, context: context)
        let conninfo = try PITRRestoreJob.restoredServer(env.database(payload.database), port: port)
        let c = try await PostgresConnection.connect(conninfo, logger: context.logger)
        let count = Int(try await c.query("SELECT count(*) FROM pg_database WHERE datallowconn").scalar ?? "0") ?? 0
        await c.close()
        return try Result(database: payload.database, basebackup: entry.manifest.id, outcome: count > 0 ? "passed" : "failed", databases: count,
                          seconds: ((ContinuousClock.now - clock).seconds * 1000).rounded() / 1000).json
    }

    static func freePort() throws -> Int {
        guard let port = LoopbackPort.free() else { throw JobError.retryable("no free loopback port for the scratch server") }
        return port
    }
}
