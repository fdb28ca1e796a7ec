import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import DBQConfig
import Foundation
import Queue
import RedisQueue

struct BackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backups", abstract: "List and show the backups in a store (read from their manifests).",
        subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List backups, newest first: time, database, size, codec, verified, checksum prefix.",
            discussion: "Only backups with a manifest are listed; unfinished ones are counted on standard error.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this database.") var database: String?
        @Flag(help: "Print JSON: an array of {id, folder, manifest, verification}.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let catalog = try await BackupCatalog.load(objectStore, database: database)
                if json {
                    try printManifestJSON(catalog.entries.map(BackupJSON.init))
                    return
                }
                print("ID                                                     FINISHED (UTC)        DATABASE     SIZE       CODEC  VERIFIED  SHA-256       KEY")
                for entry in catalog.entries {
                    let m = entry.manifest
                    func cell(_ text: String, _ width: Int) -> String { String(text.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0) }
                    let verified = switch entry.verification?.outcome {
                    case .passed?: "yes"
                    case .failed?: "FAILED"
                    case nil: "-"
                    }
                    print([cell(entry.id, 54), cell(utcText(m.finishedAt), 21), cell(m.database, 12), cell(formatBytes(m.storedSize), 10),
                           cell(m.codec.rawValue, 6), cell(verified, 9), cell(String(m.dump?.sha256.prefix(12) ?? ""), 13),
                           m.encryption.map { String($0.prefix(16)) } ?? "-"].joined(separator: " "))
                }
                var summary = "\(catalog.entries.count) backups in \(objectStore.url)"
                if !catalog.orphans.isEmpty { summary += "; \(catalog.orphans.count) unfinished (no manifest; retention removes them after its grace)" }
                if !catalog.unreadable.isEmpty { summary += "; \(catalog.unreadable.count) with an unreadable manifest: \(catalog.unreadable.map(\.folder).joined(separator: ", "))" }
                stderrLine(summary)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one backup: manifest, tables, verification.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Backup id, job id, an unambiguous prefix (8+ characters), or 'latest'.") var id: String
        @Option(help: "The database (needed for 'latest' when several are stored).") var database: String?
        @Flag(help: "Print JSON: {id, folder, manifest, verification}.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let catalog = try await BackupCatalog.load(objectStore, database: database)
                let entry = try catalog.resolve(id, database: database, store: objectStore.url)
                if json {
                    try printManifestJSON(BackupJSON(entry))
                    return
                }
                let m = entry.manifest
                print("backup      \(entry.id)")
                print("database    \(m.database) (\(m.source.database) on \(m.source.server), PostgreSQL \(m.source.serverVersion))")
                print("store       \(objectStore.url)/\(entry.folder)/")
                print("started     \(utcText(m.startedAt))")
                print("finished    \(utcText(m.finishedAt))  (\(String(format: "%.1f", m.finishedAt.timeIntervalSince(m.startedAt))) s)")
                for object in m.objects {
                    print("object      \(object.name)  \(formatBytes(object.size)) (\(formatBytes(object.rawSize)) before \(m.codec) level \(m.level))")
                    print("sha256      \(object.sha256)")
                }
                print("job         \(m.job.id) attempt \(m.job.attempt) token \(m.job.fencingToken)")
                print("pg_dump     \(m.pgDumpVersion)")
                if let v = entry.verification {
                    print("verified    \(v.outcome.rawValue) at \(utcText(v.verifiedAt)) in \(v.seconds) s")
                    for mismatch in v.mismatches { print("  mismatch  \(mismatch)") }
                } else {
                    print("verified    not yet (dbq push verify-backup --database \(m.database) --backup \(entry.id))")
                }
                print("tables      \(m.tables.count)")
                for table in m.tables { print("  \(table.qualifiedName.padding(toLength: 50, withPad: " ", startingAt: 0)) \(table.rows) rows") }
            }
        }
    }
}

/// A backup as `backups list --json` and `backups show --json` print it.
struct BackupJSON: Encodable {
    var id: String
    var folder: String
    var manifest: BackupManifest
    var verification: Verification?

    init(_ entry: BackupEntry) {
        id = entry.id
        folder = entry.folder
        manifest = entry.manifest
        verification = entry.verification
    }
}

func printManifestJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try ManifestCoding.encoder.encode(value), as: UTF8.self))
}

func utcText(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!)).replacingOccurrences(of: "T", with: " ")
}

struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention", abstract: "Plan or apply grandfather-father-son retention of a database's backups.",
        discussion: """
            Decided from the manifests' recorded times, never from object names. Never \
            deletes the newest verified backup nor a backup younger than --min-age. apply \
            takes the database's backup lock alone (waiting for running backups), deletes \
            what the plan says, then aborts unfinished uploads and removes data that never \
            got a manifest once older than --grace.
            """,
        subcommands: [Plan.self, Apply.self])

    struct PolicyOptions: ParsableArguments {
        @Option(help: "The configured database.") var database: String
        @Option(help: "Keep the newest N backups (default \(RetentionPolicy.standard.keepLast)).") var keepLast: Int?
        @Option(help: "Keep the newest backup of each of the last N days (default \(RetentionPolicy.standard.daily)).") var daily: Int?
        @Option(help: "… of each of the last N ISO weeks (default \(RetentionPolicy.standard.weekly)).") var weekly: Int?
        @Option(help: "… of each of the last N months (default \(RetentionPolicy.standard.monthly)).") var monthly: Int?
        @Option(help: "… of each of the last N years (default \(RetentionPolicy.standard.yearly)).") var yearly: Int?
        @Option(help: "Never delete backups younger than this (default 1h).") var minAge: String?
        @Option(help: "Remove unfinished uploads and manifest-less data older than this (default 1d).") var grace: String?

        /// The policy as a retention job's payload would give it: the standard one fills the gaps.
        func policy() throws -> RetentionPolicy {
            var payload = RetentionJob.Payload(database: database)
            payload.keepLast = keepLast
            payload.daily = daily
            payload.weekly = weekly
            payload.monthly = monthly
            payload.yearly = yearly
            payload.minAgeSeconds = try minAge.map { try parseDuration($0, option: "--min-age").seconds }
            payload.graceSeconds = try grace.map { try parseDuration($0, option: "--grace").seconds }
            let policy = payload.policy
            try policy.validate()
            return policy
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "plan", abstract: "Show, for every backup, keep or delete and why; change nothing.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var policy: PolicyOptions
        @Flag(help: "Print JSON: an array of {id, time, keep, reasons}.") var json = false

        func run() async throws {
            try await reportingFailures {
                let env = try store.environment()
                _ = try env.database(policy.database)
                let (_, objectStore) = try env.store(store.storage)
                let (decisions, catalog) = try await Retention.plan(try policy.policy(), database: policy.database, store: objectStore)
                if json {
                    try printManifestJSON(decisions.map { DecisionJSON(id: $0.id, time: $0.time, keep: $0.keep, reasons: $0.reasons) })
                    return
                }
                for d in decisions {
                    print("\(d.keep ? "keep  " : "delete") \(d.id)  \(utcText(d.time))  \(d.reasons.joined(separator: ", "))")
                }
                stderrLine("\(decisions.filter(\.keep).count) kept, \(decisions.filter { !$0.keep }.count) to delete, \(catalog.orphans.count) unfinished in \(objectStore.url)")
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "apply", abstract: "Apply the policy now, under the database's backup lock (needs Redis).")
        @OptionGroup var store: StoreOptions
        @OptionGroup var policy: PolicyOptions
        @OptionGroup var redis: RedisOptions

        func run() async throws {
            try await reportingFailures {
                let loaded = try store.config.load()
                let logger = makeLogger("dbq.retention")
                let locks = RedisQueue(configuration: try redis.configuration(fallback: loaded), logger: logger, connections: 1)
                let env = JobEnvironment(configuration: loaded, locks: locks, logger: logger)
                _ = try env.database(policy.database)
                let (_, objectStore) = try env.store(store.storage)
                let report = try await Retention.apply(try policy.policy(), database: policy.database, store: objectStore, env: env,
                                                       owner: "cli:\(ProcessInfo.processInfo.hostName):\(getpid())", logger: logger)
                for id in report.deleted { print("deleted \(id)") }
                for folder in report.orphansRemoved { print("removed unfinished \(folder)") }
                for key in report.uploadsAborted { print("aborted upload \(key)") }
                stderrLine("\(report.decisions.filter(\.keep).count) kept, \(report.deleted.count) deleted, \(report.orphansRemoved.count) unfinished folders removed, \(report.uploadsAborted.count) uploads aborted")
            }
        }
    }
}

struct DecisionJSON: Encodable {
    var id: String
    var time: Date
    var keep: Bool
    var reasons: [String]
}
