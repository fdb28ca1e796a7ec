import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import Foundation
import Snapshots

struct SnapshotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots", abstract: "List and show the snapshots in a store (read from their manifests).",
        discussion: "Take one with 'dbq push snapshot', load one back with 'dbq push rollback --snapshot ID --confirm', prune with 'dbq push snapshot-retention'.",
        subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List snapshots, newest first: id, time, database, tables, rows, size, migration version, label.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only snapshots of this database.") var database: String?
        @Flag(help: "Print JSON: an array of {folder, manifest}.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let entries = try await SnapshotCatalog.load(objectStore, database: database).entries.reversed()
                if json {
                    try printManifestJSON(entries.map { SnapshotJSON(folder: $0.folder, manifest: $0.manifest) })
                    return
                }
                print("ID                                                     FINISHED (UTC)        DATABASE     TABLES  ROWS        SIZE      VERSION  ENCRYPTED (KEY)   LABEL")
                for entry in entries {
                    let m = entry.manifest
                    func cell(_ text: String, _ width: Int) -> String { String(text.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0) }
                    print([cell(entry.id, 54), cell(utcText(m.finishedAt), 21), cell(m.database, 12), cell(String(m.tables.count), 7),
                           cell(String(m.rows), 11), cell(formatBytes(m.size), 9), cell(m.migrationVersion ?? "-", 8),
                           cell(m.encryption.map { String($0.prefix(16)) } ?? "-", 17), m.label ?? ""]
                        .joined(separator: " "))
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "One snapshot: its tables, rows, sequences and schema shape.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "A snapshot id, job id, prefix, or 'latest'.") var snapshot: String
        @Option(help: "With 'latest': of this database.") var database: String?
        @Flag(help: "Print the manifest as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let entry = try await SnapshotCatalog.load(objectStore, database: database).find(snapshot, database: database)
                let m = entry.manifest
                if json {
                    try printManifestJSON(SnapshotJSON(folder: entry.folder, manifest: m))
                    return
                }
                print("snapshot    \(m.id)" + (m.label.map { "  (\($0))" } ?? ""))
                print("database    \(m.database) (PostgreSQL \(m.serverVersion)), migration version \(m.migrationVersion ?? "none")")
                print("finished    \(utcText(m.finishedAt))  (\(String(format: "%.1f", m.finishedAt.timeIntervalSince(m.startedAt))) s), \(formatBytes(m.size)) \(m.codec.rawValue)")
                print("schema      sha256 \(m.schemaDigest.prefix(16))…")
                for table in m.tables {
                    print("table       \(table.qualifiedName)  \(table.rows) rows, \(table.columns.count) columns")
                }
                for sequence in m.sequences {
                    print("sequence    \(sequence.name) (\(sequence.table).\(sequence.column))  last value \(sequence.lastValue)\(sequence.isCalled ? "" : ", not called")")
                }
            }
        }
    }
}

struct SnapshotJSON: Encodable {
    var folder: String
    var manifest: SnapshotManifest
}
