import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import Exports
import Foundation

struct ExportsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exports", abstract: "List and show the exports in a store (read from their manifests).",
        subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List exports, newest first: id, time, database, tables, rows, masked.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only exports of this database.") var database: String?
        @Flag(help: "Print JSON: an array of {folder, manifest}.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let entries = try await ExportCatalog.load(objectStore).entries.filter { database == nil || $0.manifest.database == database }.reversed()
                if json {
                    try printManifestJSON(entries.map { ExportJSON(folder: $0.folder, manifest: $0.manifest) })
                    return
                }
                print("ID                                                     FINISHED (UTC)        DATABASE     TABLES  ROWS        ENCRYPTED (KEY)   MASKED")
                for entry in entries {
                    let m = entry.manifest
                    func cell(_ text: String, _ width: Int) -> String { String(text.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0) }
                    print([cell(entry.id, 54), cell(utcText(m.finishedAt), 21), cell(m.database, 12), cell(String(m.tables.count), 7),
                           cell(String(m.tables.reduce(0) { $0 + $1.rows }), 11), cell(m.encryption.map { String($0.prefix(16)) } ?? "-", 17),
                           m.policyDigest == nil ? "no" : "yes (anonymization key \(m.keyFingerprint ?? "?"))"]
                        .joined(separator: " "))
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "One export: its tables, rows, and each column's rule.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "An export id, job id, prefix, or 'latest'.") var export: String
        @Flag(help: "Print the manifest as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let entry = try await ExportCatalog.load(objectStore).find(export)
                let m = entry.manifest
                if json {
                    try printManifestJSON(ExportJSON(folder: entry.folder, manifest: m))
                    return
                }
                print("export      \(m.id)")
                print("database    \(m.database) (PostgreSQL \(m.serverVersion))")
                print("finished    \(utcText(m.finishedAt))  (\(String(format: "%.1f", m.finishedAt.timeIntervalSince(m.startedAt))) s)")
                print("policy      " + (m.policyDigest.map { "sha256 \($0.prefix(16))…, key fingerprint \(m.keyFingerprint ?? "?")" } ?? "none (not masked)"))
                if let raw = m.rawColumns {
                    print("raw columns \(raw.isEmpty ? "none" : "\(raw.count), exported as they are:")")
                    for column in raw { print("              \(column)") }
                }
                for table in m.tables {
                    print("table       \(table.qualifiedName)  \(table.rows) rows" + (table.condition.map { "  where \($0)" } ?? ""))
                    for column in table.columns { print("              \(column.name) \(column.type): \(column.rule)") }
                }
            }
        }
    }
}

struct ExportJSON: Encodable {
    var folder: String
    var manifest: ExportManifest
}
