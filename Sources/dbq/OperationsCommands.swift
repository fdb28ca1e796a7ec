import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import DBQConfig
import Foundation
import Operations
import PostgresClient
import Queue

/// The database a command works on, checked against dbq.yaml.
struct DatabaseName: ParsableArguments {
    @Option(help: "The configured database.") var database: String

    func url(_ configuration: DBQConfiguration) throws -> PostgresConnectionString {
        try environment(configuration).database(database)
    }

    func environment(_ configuration: DBQConfiguration) -> JobEnvironment {
        JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: makeLogger("dbq.operations"))
    }

    func check(_ configuration: DBQConfiguration) throws {
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
    }
}

/// The options of `maintenance`.
struct MaintenanceOptions: ParsableArguments {
    @OptionGroup var name: DatabaseName
    @Option(help: "Start no new action after this long (30m, 2h).") var budget: String?
    @Flag(help: "Show the plan (what would run and why); run nothing.") var dryRun = false
    @Option(help: "vacuum_cost_delay in milliseconds for this run.") var costDelay: Double?
    @Option(help: "vacuum_cost_limit for this run.") var costLimit: Int?
    @Option(help: "A transaction open longer than this (default 1h) stops the run: see --preflight.") var maxTransaction: String?
    @Option(help: "Replication lag past this (default 5m) stops the run: see --preflight.") var maxLag: String?
    @Option(help: "What an old transaction or lag does: skip (default) or wait (up to 10 minutes).") var preflight: String?
    @Option(help: "Freeze tables whose transaction-id age passes this (default 150000000).") var freezeAge: Int64?
    @Option(help: "Vacuum tables whose dead rows pass this share (default 0.1) …") var deadRatio: Double?
    @Option(help: "… and this count (default 1000).") var deadMinimum: Int64?
    @Option(help: "Analyze tables with this share of rows modified since the last analyze (default 0.1) …") var analyzeRatio: Double?
    @Option(help: "… and this count (default 1000).") var analyzeMinimum: Int64?
    @Option(help: "Rebuild indexes with this share of empty space (default 0.3) of at least 10 MiB.") var bloatRatio: Double?
    @Option(help: "Any thresholds as JSON (or a JSON file), e.g. '{\"bloatMinimumBytes\": 1048576}'; the flags above win.") var thresholdsJSON: String?

    /// dbq.yaml's `maintenance: {DATABASE: {…}}`, then --thresholds-json, then the flags.
    func thresholds(_ configuration: DBQConfiguration) throws -> MaintenancePlan.Thresholds {
        let configured = try mergedThresholds(MaintenancePlan.Thresholds(), configuration.maintenance[name.database].map { JSONValue.object($0.mapValues { .number($0) }).jsonText },
                                              option: "maintenance.\(name.database) in dbq.yaml")
        var t = try mergedThresholds(configured, thresholdsJSON, option: "--thresholds-json")
        if let freezeAge { t.freezeAge = freezeAge }
        if let deadRatio { t.deadRatio = deadRatio }
        if let deadMinimum { t.deadMinimum = deadMinimum }
        if let analyzeRatio { t.analyzeRatio = analyzeRatio }
        if let analyzeMinimum { t.analyzeMinimum = analyzeMinimum }
        if let bloatRatio { t.bloatRatio = bloatRatio }
        return t
    }

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        try name.check(configuration)
        if let preflight, !["skip", "wait"].contains(preflight) { throw ValidationError("--preflight must be skip or wait, not '\(preflight)'") }
        for (option, value) in [("--dead-ratio", deadRatio), ("--analyze-ratio", analyzeRatio), ("--bloat-ratio", bloatRatio)] {
            if let value, !(0...1).contains(value) { throw ValidationError("\(option) is a share from 0 to 1, not \(value)") }
        }
        let payload = MaintenanceJob.Payload(
            database: name.database, budgetSeconds: try budget.map { try parseDuration($0, option: "--budget").seconds }, dryRun: dryRun ? true : nil,
            thresholds: try thresholds(configuration), costDelayMs: costDelay, costLimit: costLimit,
            maxTransactionSeconds: try maxTransaction.map { try parseDuration($0, option: "--max-transaction").seconds },
            maxLagSeconds: try maxLag.map { try parseDuration($0, option: "--max-lag").seconds }, preflight: preflight)
        return try payloadJSON(payload)
    }
}



struct MaintenanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "maintenance", abstract: "What maintenance would do now.", subcommands: [Plan.self])

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "plan", abstract: "The maintenance plan with a reason per action (runs nothing).")
        @OptionGroup var options: MaintenanceOptions
        @OptionGroup var config: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let configuration = try config.load()
                try options.name.check(configuration)
                let url = try options.name.url(configuration)
                let c: PostgresConnection
                do { c = try await PostgresConnection.connect(url.raw, logger: makeLogger("dbq.maintenance"), applicationName: "dbq maintenance plan") } catch {
                    throw DatabaseScope.classifyConnect(error, database: options.name.database)
                }
                defer { Task { await c.close() } }
                let actions = try await MaintenanceJob.plan(c, thresholds: try options.thresholds(configuration))
                if json { try printJSON(actions); return }
                if actions.isEmpty { print("nothing to do for database '\(options.name.database)'") }
                for action in actions { print("\(action.sql)\n      \(action.reason)") }
            }
        }
    }
}

struct HealthOptions: ParsableArguments {
    @OptionGroup var name: DatabaseName
    @Option(help: "Idle-in-transaction seconds that warn (default 300).") var idleWarning: Double?
    @Option(help: "Sequence share of its maximum that is critical (default 0.9).") var sequenceCritical: Double?
    @Option(help: "Any thresholds as JSON (or a JSON file), e.g. '{\"replicationLagWarning\": 30}'; the flags above win.") var thresholdsJSON: String?

    /// dbq.yaml's `health: {DATABASE: {…}}`, then --thresholds-json, then the flags.
    func thresholds(_ configuration: DBQConfiguration) throws -> HealthChecks.Thresholds {
        let configured = try mergedThresholds(HealthChecks.Thresholds(), configuration.health[name.database].map { JSONValue.object($0.mapValues { .number($0) }).jsonText },
                                              option: "health.\(name.database) in dbq.yaml")
        var t = try mergedThresholds(configured, thresholdsJSON, option: "--thresholds-json")
        if let idleWarning { t.idleInTransactionWarning = idleWarning }
        if let sequenceCritical { t.sequenceCritical = sequenceCritical }
        return t
    }
}

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Health checks a monitor can use: exit 0 when nothing is critical, 2 when something is, 1 when the checks could not run.",
        discussion: """
            Connections by state against max_connections, sessions idle in transaction, the longest \
            transaction and query, blocked queries with their chain of blockers, replication lag and \
            the WAL each slot holds, transaction ids left before wraparound, cache hit ratio, \
            checkpoints requested against timed, invalid indexes, sequences near their maximum, size.
            """)
    @OptionGroup var options: HealthOptions
    @OptionGroup var config: ConfigOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        var code: Int32 = 0
        try await reportingFailures {
            let configuration = try config.load()
            try options.name.check(configuration)
            let report = try await HealthJob.report(try options.name.url(configuration), database: options.name.database, thresholds: try options.thresholds(configuration),
                                                    logger: makeLogger("dbq.health"))
            if json { try printJSON(report) } else {
                for check in report.checks {
                    print("\(check.status.rawValue.uppercased().padding(toLength: 9, withPad: " ", startingAt: 0)) \(check.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(check.value)")
                    if let action = check.action { print("          → \(action)") }
                }
            }
            code = HealthChecks.exitCode(report.checks)
        }
        if code != 0 { throw ExitCode(code) }
    }
}



struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Sizes, rows, scans and the top statements now (the sample is kept); trends between samples.",
        subcommands: [Show.self, Trends.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Take a sample, keep it, print it (the default).")
        @OptionGroup var name: DatabaseName
        @OptionGroup var store: StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let env = try store.environment()
                try name.check(env.configuration)
                let sample = try await StatsJob.sample(try env.database(name.database), database: name.database, logger: makeLogger("dbq.stats"))
                let (_, objectStore) = try env.store(store.storage)
                _ = try await StatsStore.save(sample, id: "cli-\(getpid())", store: objectStore)
                if json { try printManifestJSON(sample); return }
                print("database \(name.database): \(formatBytes(sample.databaseBytes))")
                print("TABLE                                    TOTAL      TABLE      TOAST      INDEXES    ROWS         DEAD       SEQ SCANS  IDX SCANS")
                for t in sample.tables.prefix(20) {
                    print([pad(t.name, 40), pad(formatBytes(t.totalBytes), 10), pad(formatBytes(t.tableBytes), 10), pad(formatBytes(t.toastBytes), 10),
                           pad(formatBytes(t.indexBytes), 10), pad(String(t.rows), 12), pad(String(t.deadRows), 10), pad(String(t.seqScans), 10), String(t.indexScans)].joined(separator: " "))
                }
                if let note = sample.note { stderrLine("note: \(note)") }
                if !sample.statements.isEmpty {
                    print("\nCALLS      TOTAL MS     MEAN MS    ROWS       HIT/READ BLOCKS   STATEMENT")
                    for s in sample.statements.prefix(10) {
                        print([pad(String(s.calls), 10), pad(String(format: "%.1f", s.totalMs), 12), pad(String(format: "%.2f", s.meanMs), 10), pad(String(s.rows), 10),
                               pad("\(s.blocksHit)/\(s.blocksRead)", 17), String(s.query.replacingOccurrences(of: "\n", with: " ").prefix(70))].joined(separator: " "))
                    }
                }
            }
        }
    }

    struct Trends: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "trends", abstract: "Growth per table and statements that became slower, between the first and last sample since --since.")
        @OptionGroup var name: DatabaseName
        @OptionGroup var store: StoreOptions
        @Option(help: "How far back (default 7d).") var since = "7d"
        @Option(help: "A statement is slower when its calls between the samples took this many times its earlier mean (default 2).") var factor = 2.0
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let env = try store.environment()
                try name.check(env.configuration)
                let (_, objectStore) = try env.store(store.storage)
                let from = Date().addingTimeInterval(-(try parseDuration(since, option: "--since").seconds))
                let samples = try await StatsStore.load(database: name.database, since: from, store: objectStore)
                guard let report = StatsTrends.compare(samples, factor: factor) else {
                    throw CheckFailure("\(samples.count) sample(s) of database '\(name.database)' since \(utcText(from)); trends need two (dbq stats, or dbq push stats on a schedule)")
                }
                if json { try printManifestJSON(report); return }
                print("\(report.samples) samples from \(utcText(report.from)) to \(utcText(report.to))")
                print("TABLE                                    SIZE BEFORE  SIZE NOW     PER DAY      ROWS BEFORE  ROWS NOW")
                for g in report.growth.prefix(20) {
                    print([pad(g.table, 40), pad(formatBytes(g.bytesBefore), 12), pad(formatBytes(g.bytesAfter), 12), pad(formatBytes(Int64(g.bytesPerDay)), 12),
                           pad(String(g.rowsBefore), 12), String(g.rowsAfter)].joined(separator: " "))
                }
                if report.slower.isEmpty { print("\nno statement became \(factor)× slower") } else {
                    print("\nSLOWER  MEAN BEFORE  MEAN SINCE   CALLS    STATEMENT")
                    for s in report.slower.prefix(20) {
                        print([pad(String(format: "%.1f×", s.factor), 7), pad(String(format: "%.2f ms", s.meanBefore), 12), pad(String(format: "%.2f ms", s.meanBetween), 12),
                               pad(String(s.calls), 8), String(s.query.replacingOccurrences(of: "\n", with: " ").prefix(70))].joined(separator: " "))
                    }
                }
            }
        }
    }
}

/// The options of `partitions`: the tables come from `partitions:` in dbq.yaml.
struct PartitionsOptions: ParsableArguments {
    @OptionGroup var name: DatabaseName
    @Flag(help: "Show what would be created, detached or dropped; change nothing.") var dryRun = false
    @Option(help: "lock_timeout of each statement (default 2s); retried with backoff.") var lockTimeout: String?

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        try name.check(configuration)
        guard let settings = configuration.partitions[name.database], !settings.isEmpty else {
            throw ValidationError("no partitioned tables for database '\(name.database)': declare them in dbq.yaml under partitions: {\(name.database): [{table: public.events, interval: daily, premake: 7, retention: 90d}]}")
        }
        let specs = settings.map { s in
            PartitionSpec(table: s.table, interval: PartitionSpec.Interval(rawValue: s.interval) ?? .daily, premake: s.premake,
                          retentionSeconds: s.retentionSeconds, retentionAction: PartitionSpec.RetentionAction(rawValue: s.retentionAction) ?? .detach)
        }
        let payload = PartitionsJob.Payload(database: name.database, tables: specs, dryRun: dryRun ? true : nil,
                                            lockTimeoutMs: try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) })
        return try payloadJSON(payload)
    }
}



/// `--thresholds '{"deadRatio": 0.2}'` (or a JSON file): only the keys given change; the
/// rest keep their defaults. A key that is not a threshold is refused by name.
func mergedThresholds<T: Codable>(_ defaults: T, _ text: String?, option: String) throws -> T {
    guard let text else { return defaults }
    let json = FileManager.default.fileExists(atPath: text) ? (try? String(contentsOfFile: text, encoding: .utf8)) ?? text : text
    guard case .object(var base) = try JSONValue(json: String(decoding: try JSONEncoder().encode(defaults), as: UTF8.self)) else { return defaults }
    let given: JSONValue
    do { given = try JSONValue(json: json) } catch { throw ValidationError("\(option) is not valid JSON: \(JSONErrorText.describe(error))") }
    guard case .object(let fields) = given else { throw ValidationError("\(option) must be a JSON object of thresholds, like {\"deadRatio\": 0.2}") }
    for (key, value) in fields {
        guard base[key] != nil else { throw ValidationError("\(option): '\(key)' is not a threshold; they are: \(base.keys.sorted().joined(separator: ", "))") }
        base[key] = value
    }
    do { return try JSONDecoder().decode(T.self, from: Data(JSONValue.object(base).jsonText.utf8)) } catch {
        throw ValidationError("\(option): a threshold has the wrong type (numbers expected): \(JSONErrorText.describe(error))")
    }
}

extension MaintenanceOptions: RequiredKindOptions {
    static var kind: String { MaintenanceJob.kind }
    static var abstract: String { "VACUUM (FREEZE) by transaction-id age first, then VACUUM, ANALYZE and REINDEX CONCURRENTLY by thresholds, within a budget." }
}

extension HealthOptions: RequiredKindOptions {
    static var kind: String { HealthJob.kind }
    static var abstract: String { "Health checks as a job: its result holds every check; a critical finding fails it, naming each critical check." }
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        try name.check(configuration)
        return try payloadJSON(HealthJob.Payload(database: name.database, thresholds: try thresholds(configuration)))
    }
}

/// The options of `stats`.
struct StatsOptions: RequiredKindOptions {
    static var kind: String { StatsJob.kind }
    static var abstract: String { "A stats sample as a job, kept in the storage for 'dbq stats trends'." }
    @OptionGroup var name: DatabaseName
    @Option(help: "The storage that keeps the samples (default: 'archive', the only one, or the local default).") var storage: String?
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        try name.check(configuration)
        try StorageCheck.check(storage.map(JSONValue.string), in: configuration)
        return try payloadJSON(StatsJob.Payload(database: name.database, storage: storage))
    }
}

extension PartitionsOptions: RequiredKindOptions {
    static var kind: String { PartitionsJob.kind }
    static var abstract: String { "Keep the range-partitioned tables of dbq.yaml: partitions made ahead, old ones detached or dropped, the default partition's rows reported." }
}
