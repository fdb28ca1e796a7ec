import ArgumentParser
import DatabaseJobs
import DBQCommand
import DBQConfig
import Foundation
import Queue
import Snapshots

/// The options of `rollback`, shared by `dbq push rollback` and `dbq run rollback`.
struct RollbackOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String
    @Option(help: "The snapshot to load back: id, job id, prefix, or 'latest' (of the database, resolved when pushed); 'dbq snapshots list' shows them.")
    var snapshot: String
    @Option(help: "The storage holding it (default: 'archive', the only one, or the local default).") var storage: String?
    @Flag(help: "Yes: replace every row of the snapshot's tables (changes since the snapshot are lost).") var confirm = false
    @Flag(help: "Show rows per table now and in the snapshot, and whether it would be refused; change nothing.") var dryRun = false
    @Option(help: "lock_timeout of each attempt to lock the tables (default 2s); retried with backoff.") var lockTimeout: String?

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        if !confirm && !dryRun {
            throw ValidationError("a rollback replaces every row of the snapshot's tables (changes since it are lost): add --confirm, or --dry-run to see rows now and in the snapshot")
        }
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        if !configuration.databases.isEmpty || !configuration.storages.isEmpty {
            try StorageCheck.check(storage.map(JSONValue.string), in: configuration)
        }
        let payload = RollbackJob.Payload(database: database, storage: storage, snapshot: snapshot, confirm: confirm ? true : nil, dryRun: dryRun ? true : nil,
                                          lockTimeoutMs: try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) })
        return try payloadJSON(payload)
    }

    /// `--snapshot latest` names the snapshot that is latest when the job is pushed: a
    /// retry (or a worker that runs the job later) rolls back to that one, not to one taken
    /// in between.
    func pinned(_ payload: JSONValue, configuration: DBQConfiguration) async throws -> JSONValue {
        guard snapshot == "latest", case .object(var fields) = payload else { return payload }
        let env = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: makeLogger("dbq.push"))
        let store = try env.store(storage).store
        let entry = try await SnapshotCatalog.load(store, database: database).find("latest", database: database)
        FileHandle.standardError.write(Data("the latest snapshot of '\(database)' is \(entry.id) (\(entry.manifest.label ?? "no label")): the job rolls back to it\n".utf8))
        fields["snapshot"] = .string(entry.id)
        return .object(fields)
    }
}



extension RollbackOptions: RequiredKindOptions {
    static var kind: String { RollbackJob.kind }
    static var abstract: String { "Load a snapshot back over its tables in one transaction (--confirm), or show what would change (--dry-run)." }
    static var discussion: String {
        "Locks the tables (lock_timeout, retried with backoff), checks their shape against the snapshot's, empties them, loads the rows, resets the sequences they own, commits. Refused before any change when a table's columns or constraints differ from the snapshot's (each difference named) or a table outside the snapshot references one in it."
    }
}

/// `dbq push snapshot` / `dbq run snapshot`.
struct SnapshotOptions: KindOptions {
    static var kind: String { SnapshotJob.kind }
    static var abstract: String { "Snapshot tables (rows, owned sequences, shapes) in one consistent read, for a later rollback." }

    @OptionGroup var target: TargetOptions
    @Option(help: "The tables (schema.table or a name in public), comma-separated.") var tables: String?
    @Option(help: "Every table of this schema (instead of --tables).") var schema: String?
    @Option(help: "A note kept in the manifest (e.g. 'before 0042_split_names').") var label: String?
    @Option(help: "zstd (default), gzip or none.") var codec: String?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("codec", codec)
        fields.set("schema", schema)
        fields.set("label", label)
        if schema != nil && tables != nil { throw ValidationError("--schema and --tables exclude each other: name tables, or take a schema's") }
        fields.set(list: "tables", tables)
        guard fields.has("database") else { throw ValidationError("snapshot needs --database NAME (a database of dbq.yaml)") }
        guard fields.has("tables") || fields.has("schema") else {
            throw ValidationError("snapshot needs --tables a,b or --schema NAME (the tables a rollback will replace)")
        }
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push snapshot-retention` / `dbq run snapshot-retention`.
struct SnapshotRetentionOptions: KindOptions {
    static var kind: String { SnapshotRetentionJob.kind }
    static var abstract: String { "Remove a database's snapshots beyond --keep-last and older than --max-age (never the newest)." }

    @OptionGroup var target: TargetOptions
    @Option(help: "Keep the newest N snapshots.") var keepLast: Int?
    @Option(help: "Remove snapshots older than this (e.g. 14d); the newest is always kept.") var maxAge: String?
    @Flag(help: "Report what would go; remove nothing.") var dryRun = false

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("keepLast", keepLast)
        fields.set("maxAgeSeconds", try maxAge.map { try parseDuration($0, option: "--max-age").seconds })
        fields.set("dryRun", flag: dryRun)
        guard fields.has("database") else { throw ValidationError("snapshot-retention needs --database NAME (a database of dbq.yaml)") }
        guard fields.has("keepLast") || fields.has("maxAgeSeconds") else {
            throw ValidationError("snapshot-retention needs --keep-last N or --max-age DURATION (or both)")
        }
        return try fields.checked(kind: Self.kind, configuration)
    }
}
