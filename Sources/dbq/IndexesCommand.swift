import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import DBQConfig
import Foundation
import Indexes
import PostgresClient
import Queue
import RedisQueue

/// The options of `index-advice` (and `dbq indexes advise`).
struct AdviceOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String
    @Option(help: "Only statements called at least this often (default 10).") var minCalls: Int64?
    @Option(help: "Only statements whose mean time is at least this many milliseconds (default 0).") var minMeanMs: Double?
    @Option(help: "Recommend an index when it cuts a statement's plan cost by at least this percentage (default 50).") var minSavings: Double?

    var payload: IndexAdviceJob.Payload {
        IndexAdviceJob.Payload(database: database, minCalls: minCalls, minMeanMs: minMeanMs, minSavings: minSavings.map { $0 / 100 })
    }

    func check(_ configuration: DBQConfiguration) throws {
        if let minSavings, !(0...100).contains(minSavings) { throw ValidationError("--min-savings is a percentage from 0 to 100, not \(minSavings)") }
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
    }

    func json(_ configuration: DBQConfiguration) throws -> JSONValue {
        try check(configuration)
        return try payloadJSON(payload)
    }

    /// The advice for the database, read here (what the index-advice job reports).
    func report(_ configuration: DBQConfiguration) async throws -> IndexAdvice {
        try check(configuration)
        let env = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: makeLogger("dbq.indexes"))
        return try await IndexAdvice.report(try env.database(database), database: database, options: payload.options, logger: env.logger)
    }
}

/// The options of `create-index`.
struct CreateIndexOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String
    @Option(help: "The table (schema.table, or a name in public).") var table: String?
    @Option(help: "Columns or expressions, comma-separated (customer_id,created_at or lower(email)).") var columns: String?
    @Option(name: .customLong("where"), help: "A partial index's condition.") var predicate: String?
    @Option(help: "btree (default), gin, gist, brin, hash or spgist.") var using: String?
    @Option(help: "Columns carried in the index, comma-separated (INCLUDE).") var include: String?
    @Flag(help: "A unique index.") var unique = false
    @Option(help: "The index's name (default: <table>_<columns>_idx).") var name: String?
    @Option(help: "The whole statement instead: CREATE [UNIQUE] INDEX CONCURRENTLY name ON … (parsed and checked).") var sql: String?
    @Option(help: "A statement whose plan should use the new index; the result says whether it does.") var check: String?
    @Flag(help: "Fail the job when --check's plan does not use the index.") var requireUse = false
    @Option(help: "lock_timeout of each attempt (default 2s); retried with backoff.") var lockTimeout: String?

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        if sql != nil && (table != nil || columns != nil) { throw ValidationError("give --sql, or --table and --columns, not both") }
        if requireUse && check == nil { throw ValidationError("--require-use needs --check 'SELECT …'") }
        func list(_ text: String?) -> [String]? { text.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } }
        let payload = CreateIndexJob.Payload(
            database: database, table: table, columns: list(columns), predicate: predicate, method: using, include: list(include),
            unique: unique ? true : nil, name: name, sql: sql, check: check, requireUse: requireUse ? true : nil,
            lockTimeoutMs: try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) })
        // Checked here as a worker would: a bad statement or option fails now, not later.
        do { _ = try payload.spec() } catch { throw ValidationError("\(error)") }
        return try payloadJSON(payload)
    }
}

/// The options of `drop-index` and `reindex`.
struct IndexNameOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String
    @Option(help: "The index (schema.index, or a name in public).") var index: String
    @Option(help: "lock_timeout of each attempt (default 2s); retried with backoff.") var lockTimeout: String?

    func payload(_ configuration: DBQConfiguration, drop: Bool) throws -> JSONValue {
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        let ms = try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) }
        let data = drop ? try JSONEncoder().encode(DropIndexJob.Payload(database: database, index: index, lockTimeoutMs: ms))
            : try JSONEncoder().encode(ReindexJob.Payload(database: database, index: index, lockTimeoutMs: ms))
        return try JSONValue(json: String(decoding: data, as: UTF8.self))
    }
}





struct PushApplyAdvice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply-advice",
        abstract: "Compute the advice here and queue one create-index job per recommended index (missing ones, then unindexed foreign keys), best first.")
    @OptionGroup var options: AdviceOptions
    @Option(help: "How many builds to queue (default 5).") var top = 5
    @Flag(help: "Also queue guesses (heuristic findings, when HypoPG is missing).") var includeHeuristic = false
    @OptionGroup(title: "Queue options") var job: QueueOptions
    @OptionGroup var redis: RedisOptions
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await reportingFailures {
            let report = try await options.report(try config.load())
            let chosen = report.findings.filter { ($0.kind == .missing || $0.kind == .unindexedForeignKey) && $0.columns != nil && (includeHeuristic || !$0.heuristic) }
                .prefix(max(0, top))
            if chosen.isEmpty { stderrLine("no index to build: " + (report.notes.first ?? "the advice recommends none")); return }
            let registry = Kinds.registry
            let queue = try redis.queue(logger: makeLogger("dbq.push"), connections: 1)
            let defaults = registry.defaults(for: CreateIndexJob.kind)!
            for finding in chosen {
                let payload = CreateIndexJob.Payload(database: options.database, table: finding.table, columns: finding.columns)
                let value = try payloadJSON(payload)
                var pushOptions = job
                pushOptions.wait = false
                _ = try await pushOptions.push(try job.envelope(kind: CreateIndexJob.kind, payload: value, defaults: defaults, runAt: try job.runAt(), registry: registry), to: queue)
                stderrLine("queued: \(finding.sql ?? finding.table) (\(finding.priority.rawValue): \(finding.reason))")
            }
        }
    }
}




struct IndexesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "indexes", abstract: "Index advice for a database, inline.", subcommands: [Advise.self])

    struct Advise: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "advise",
            abstract: "Missing indexes from the workload (pg_stat_statements + HypoPG what-if costs) and the catalog's checks, by priority.",
            discussion: """
                Checks (pghero's thresholds): unused indexes (with the statistics' age: a fresh restore \
                is 'too early to tell'), duplicate and redundant ones, invalid ones, foreign keys \
                without an index, tables read mostly by sequential scans. Indexes that back a primary \
                key, unique or exclusion constraint are never proposed for dropping.
                """)
        @OptionGroup var options: AdviceOptions
        @OptionGroup var config: ConfigOptions
        @Flag(help: "Print the report as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let report = try await options.report(try config.load())
                if json { try printJSON(report); return }
                for note in report.notes { stderrLine("note: \(note)") }
                if report.findings.isEmpty { print("nothing to advise for database '\(options.database)'") }
                for finding in report.findings {
                    print("\(finding.priority.rawValue.uppercased())  \(finding.kind.rawValue)\(finding.heuristic ? " (heuristic)" : "")  \(finding.index ?? finding.table)")
                    print("      \(finding.reason)")
                    if let sql = finding.sql { print("      \(sql)") }
                    for statement in finding.statements ?? [] { print("      helps: \(statement.replacingOccurrences(of: "\n", with: " ").prefix(120))") }
                }
                stderrLine(String(format: "%d findings in %.2f s", report.findings.count, report.seconds))
            }
        }
    }
}

extension CreateIndexOptions: RequiredKindOptions {
    static var kind: String { CreateIndexJob.kind }
    static var abstract: String { "Build an index CONCURRENTLY as a job: lock_timeout with retries, no INVALID index left behind, partitions one by one, the plan checked." }
}

struct DropIndexOptions: RequiredKindOptions {
    static var kind: String { DropIndexJob.kind }
    static var abstract: String { "DROP INDEX CONCURRENTLY as a job (never an index that backs a constraint)." }
    @OptionGroup var index: IndexNameOptions
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue { try index.payload(configuration, drop: true) }
}

struct ReindexOptions: RequiredKindOptions {
    static var kind: String { ReindexJob.kind }
    static var abstract: String { "REINDEX INDEX CONCURRENTLY as a job (a failed rebuild's leftover dropped)." }
    @OptionGroup var index: IndexNameOptions
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue { try index.payload(configuration, drop: false) }
}

extension AdviceOptions: RequiredKindOptions {
    static var kind: String { IndexAdviceJob.kind }
    static var abstract: String { "Index advice as a job: its result holds the report." }
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue { try json(configuration) }
}
