import ArgumentParser
import Backups
import DBQCommand
import DBQConfig
import Queue

/// `dbq push backup` / `dbq run backup`.
struct BackupOptions: KindOptions {
    static var kind: String { BackupJob.kind }
    static var abstract: String { "Back up a database: pg_dump streamed through compression and SHA-256 into the store, manifest last." }

    @OptionGroup var target: TargetOptions
    @Option(help: "zstd (default), gzip or none.") var codec: String?
    @Option(help: "Compression level (zstd 1-19, default 1; gzip 1-9, default 6).") var level: Int?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("codec", codec)
        fields.set("level", level)
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push restore` / `dbq run restore`.
struct RestoreOptions: KindOptions {
    static var kind: String { RestoreJob.kind }
    static var abstract: String { "Restore a backup into a database (checked against its manifest as it streams)." }

    @OptionGroup var source: TargetOptions
    @Option(help: "Backup id, job id or prefix (default: latest).") var backup: String?
    @Option(help: "The database to restore into (a configured name, or a name on the source's server).") var target: String?
    @Flag(help: "Create the target database first.") var create = false
    @Flag(help: "Drop the target's objects before recreating them.") var clean = false
    @Flag(help: "Allow restoring over the source database itself.") var force = false

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, source)
        fields.set("backup", backup)
        fields.set("target", target)
        fields.set("create", flag: create)
        fields.set("clean", flag: clean)
        fields.set("force", flag: force)
        guard fields.has("database") else { throw ValidationError("restore needs --database NAME (a database of dbq.yaml)") }
        guard fields.has("target") else {
            throw ValidationError("restore needs --target DATABASE: a configured database, or a new name with --create")
        }
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push verify-backup` / `dbq run verify-backup`.
struct VerifyBackupOptions: KindOptions {
    static var kind: String { VerifyBackupJob.kind }
    static var abstract: String { "Restore a backup into a scratch database, compare tables and rows with its manifest, record the verification." }

    @OptionGroup var target: TargetOptions
    @Option(help: "Backup id, job id or prefix (default: latest).") var backup: String?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("backup", backup)
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push retention` / `dbq run retention`.
struct RetentionOptions: KindOptions {
    static var kind: String { RetentionJob.kind }
    static var abstract: String { "Apply a grandfather-father-son policy to a database's backups, and remove what killed backups left." }

    @OptionGroup var target: TargetOptions
    @Option(help: "Keep the newest N backups.") var keepLast: Int?
    @Option(help: "Keep the newest backup of each of the last N days.") var daily: Int?
    @Option(help: "… of each of the last N ISO weeks.") var weekly: Int?
    @Option(help: "… of each of the last N months.") var monthly: Int?
    @Option(help: "… of each of the last N years.") var yearly: Int?
    @Option(help: "Never delete backups younger than this (e.g. 1h, 2d).") var minAge: String?
    @Option(help: "Remove unfinished uploads and manifest-less data older than this (default 1d).") var grace: String?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("keepLast", keepLast)
        fields.set("daily", daily)
        fields.set("weekly", weekly)
        fields.set("monthly", monthly)
        fields.set("yearly", yearly)
        fields.set("minAgeSeconds", try minAge.map { try parseDuration($0, option: "--min-age").seconds })
        fields.set("graceSeconds", try grace.map { try parseDuration($0, option: "--grace").seconds })
        return try fields.checked(kind: Self.kind, configuration)
    }
}
