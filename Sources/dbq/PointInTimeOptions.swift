import ArgumentParser
import Backups
import DBQCommand
import DBQConfig
import Foundation
import Queue

/// `dbq push basebackup` / `dbq run basebackup`.
struct BaseBackupOptions: KindOptions {
    static var kind: String { BaseBackupJob.kind }
    static var abstract: String { "A physical backup of the whole server: pg_basebackup streamed through zstd and SHA-256 into the store, manifest last." }
    static var discussion: String {
        "Needs archive_mode = on and archive_command = 'dbq wal push %p --database NAME' (see dbq wal --help): the WAL a restore replays comes from the archive."
    }

    @OptionGroup var target: TargetOptions
    @Option(help: "zstd level (1-19, default 1).") var level: Int?
    @Option(help: "The most pg_basebackup reads per second (32M, 500k), to spare a busy server's disks.") var maxRate: String?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("level", level)
        fields.set("maxRate", maxRate)
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push pitr-restore` / `dbq run pitr-restore`.
struct PITRRestoreOptions: KindOptions {
    static var kind: String { PITRRestoreJob.kind }
    static var abstract: String { "Restore the server to an instant: a base backup into an empty data directory, then the archived WAL replayed to the target." }
    static var discussion: String {
        """
        On the worker's host. The newest base backup that ends before the target is used (or --basebackup). \
        Target: --to TIME (2026-12-07 10:00:00+00), --lsn LSN, --latest (the end of the archive), or none (the \
        backup's own end). With --start the server is started on --port and the job waits until it has reached \
        the target and been promoted.
        """
    }

    @OptionGroup var target: TargetOptions
    @Option(help: "Base backup id or prefix (default: the newest before the target).") var basebackup: String?
    @Option(help: "Recover to this time (with its zone: 2026-12-07 10:00:00+00).") var to: String?
    @Option(help: "Recover to this LSN (0/3000060).") var lsn: String?
    @Flag(help: "Recover to the end of the archive.") var latest = false
    @Option(help: "The data directory to restore into (must be empty or new).") var dataDirectory: String?
    @Option(help: "The restored server's port.") var port: Int?
    @Flag(help: "Start the restored server and wait until it is promoted.") var start = false
    @Option(help: "The user who owns the data directory and runs the server (default: this user; postgres when root).") var runAs: String?
    @Option(help: "The dbq executable the restored server's restore_command runs (default: the worker's).") var dbq: String?
    @Option(help: "The timeline recovery follows: latest (default), current (the base backup's) or a number.") var timeline: String?
    @Option(help: "WAL segments the restore command fetches ahead, in parallel (default 1: none ahead).") var prefetch: Int?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("basebackup", basebackup)
        fields.set("to", to)
        fields.set("lsn", lsn)
        fields.set("latest", flag: latest)
        fields.set("dataDirectory", dataDirectory)
        fields.set("port", port)
        fields.set("start", flag: start)
        fields.set("runAs", runAs)
        fields.set("dbq", dbq)
        fields.set("timeline", timeline)
        fields.set("prefetch", prefetch)
        guard fields.has("dataDirectory") else { throw ValidationError("pitr-restore needs --data-directory DIR (empty or new, on the worker's host)") }
        if start, port == nil, !fields.has("port") { throw ValidationError("--start needs --port (the restored server's port)") }
        if [to != nil, lsn != nil, latest].filter({ $0 }).count > 1 { throw ValidationError("give one recovery target: --to TIME, --lsn LSN or --latest") }
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push verify-basebackup` / `dbq run verify-basebackup`.
struct VerifyBaseBackupOptions: KindOptions {
    static var kind: String { VerifyBaseBackupJob.kind }
    static var abstract: String { "Restore a base backup into a scratch directory to its consistent end, start it, check it answers, remove it." }

    @OptionGroup var target: TargetOptions
    @Option(help: "Base backup id or prefix (default: the newest).") var basebackup: String?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("basebackup", basebackup)
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq basebackups list|show`.
struct BaseBackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "basebackups", abstract: "List and show the base backups in a store (read from their manifests).",
        subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List base backups, newest first.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this database.") var database: String?
        @Flag(help: "Print JSON: an array of manifests.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let entries = try await BaseBackupCatalog.load(objectStore, database: database).entries.sorted { $0.manifest.finishedAt > $1.manifest.finishedAt }
                if json {
                    try printManifestJSON(entries.map(\.manifest))
                    return
                }
                print("ID                                                     FINISHED (UTC)        DATABASE     SIZE       TIMELINE  START LSN    STOP LSN     KEY")
                for e in entries {
                    let m = e.manifest
                    func cell(_ text: String, _ width: Int) -> String { String(text.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0) }
                    print([cell(m.id, 54), cell(utcText(m.finishedAt), 21), cell(m.database, 12), cell(formatBytes(m.storedSize), 10),
                           cell("\(m.timeline)", 9), cell(m.startLSN, 12), cell(m.stopLSN, 12), m.encryption.map { String($0.prefix(16)) } ?? "-"].joined(separator: " "))
                }
                stderrLine("\(entries.count) base backups in \(objectStore.url)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one base backup's manifest.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Base backup id, job id, an unambiguous prefix (8+ characters), or 'latest'.") var id: String
        @Option(help: "The database (needed for 'latest' when several are stored).") var database: String?

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let catalog = try await BaseBackupCatalog.load(objectStore, database: database)
                try printManifestJSON([try catalog.find(id, database: database).manifest])
            }
        }
    }
}

/// `dbq push basebackup-retention` / `dbq run basebackup-retention`: the dump retention's
/// options, applied to base backups and the WAL they need.
struct BaseBackupRetentionOptions: KindOptions {
    static var kind: String { BaseBackupRetentionJob.kind }
    static var abstract: String { "Apply a grandfather-father-son policy to a database's base backups, and delete the WAL no kept one needs." }
    @OptionGroup var retention: RetentionOptions

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        try retention.payload(configuration, base: base)
    }
}
