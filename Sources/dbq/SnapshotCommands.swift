import ArgumentParser
import DatabaseJobs
import DBQConfig
import Foundation
import Queue
import Snapshots

/// The options of `rollback`, shared by `dbq push rollback` and `dbq run rollback`.
struct RollbackOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String
    @Option(help: "The snapshot to load back: id, job id, prefix, or 'latest' (of the database); 'dbq snapshots list' shows them.")
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
            try BackupPushOptions.checkStorage(storage.map(JSONValue.string), in: configuration)
        }
        let payload = RollbackJob.Payload(database: database, storage: storage, snapshot: snapshot, confirm: confirm ? true : nil, dryRun: dryRun ? true : nil,
                                          lockTimeoutMs: try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) })
        return try payloadJSON(payload)
    }
}



extension RollbackOptions: KindOptions {
    static var kind: String { RollbackJob.kind }
    static var abstract: String { "Load a snapshot back over its tables in one transaction (--confirm), or show what would change (--dry-run)." }
    static var discussion: String {
        "Locks the tables (lock_timeout, retried with backoff), checks their shape against the snapshot's, empties them, loads the rows, resets the sequences they own, commits. Refused before any change when a table's columns or constraints differ from the snapshot's (each difference named) or a table outside the snapshot references one in it."
    }
}
