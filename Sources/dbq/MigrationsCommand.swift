import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import DBQConfig
import Foundation
import Migrations
import PostgresClient
import Queue

/// Where a database's migration files are: --dir, else `migrations:` of dbq.yaml.
struct MigrationSource: ParsableArguments {
    @Option(help: "The configured database.")
    var database: String
    @Option(help: "The folder of NNNN_name.up.sql / .down.sql files (default: migrations: {DATABASE: FOLDER} of dbq.yaml).")
    var dir: String?

    func folder(_ configuration: DBQConfiguration) throws -> String {
        if let dir { return dir }
        guard let folder = configuration.migrations[database] else {
            throw ValidationError("no migrations folder for database '\(database)': pass --dir FOLDER or add migrations: {\(database): jobs/migrations} to dbq.yaml")
        }
        return folder
    }

    /// The files, each checked by PostgreSQL's parser now (a syntax error is named here,
    /// not by a worker later).
    func files(_ configuration: DBQConfiguration) throws -> [MigrationFile] {
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        let files: [MigrationFile]
        do { files = try MigrationFiles.load(directory: try folder(configuration)) } catch let error as MigrationFiles.Problem { throw ValidationError(error.description) }
        for file in files {
            do { _ = try MigrationAnalysis.analyze(file.up, file: file.upFile) } catch { throw ValidationError("\(file.upFile): \(error)") }
            if let down = file.down {
                do { _ = try MigrationAnalysis.analyze(down, file: file.downFile) } catch { throw ValidationError("\(file.downFile): \(error)") }
            }
        }
        return files
    }
}

/// The options of `migrate`, shared by `dbq push migrate` and `dbq run migrate`.
struct MigrateOptions: ParsableArguments {
    @OptionGroup var source: MigrationSource
    @Option(help: "Apply up to this version (default: every pending file).") var to: String?
    @Flag(help: "Show the plan and the lint findings; apply nothing.") var dryRun = false
    @Flag(help: "Snapshot the tables the pending files change first (the result names the snapshot; 'dbq push rollback --snapshot ID --confirm' loads it back).")
    var snapshot = false
    @Option(help: "The storage for --snapshot (default: 'archive', the only one, or the local default).") var storage: String?
    @Option(help: "Allow a lint rule for this run (repeatable), e.g. --allow drop-column.") var allow: [String] = []
    @Flag(help: "Apply a new file older than the newest applied one.") var outOfOrder = false
    @Option(help: "lock_timeout of every statement (default 2s); a statement that times out on a lock is retried with backoff.") var lockTimeout: String?
    @Option(help: "statement_timeout of every statement (default: none).") var statementTimeout: String?

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        for rule in allow where LintRule(rawValue: rule) == nil {
            throw ValidationError("--allow \(rule) is not a lint rule; rules: \(LintRule.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let files = try source.files(configuration)
        if storage != nil && !snapshot { throw ValidationError("--storage is for --snapshot") }
        if snapshot { try StorageCheck.check(storage.map(JSONValue.string), in: configuration) }
        let payload = MigrateJob.Payload(
            database: source.database, files: files, to: to, dryRun: dryRun ? true : nil, snapshot: snapshot ? true : nil, storage: storage,
            allow: allow.isEmpty ? nil : allow, outOfOrder: outOfOrder ? true : nil,
            lockTimeoutMs: try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) },
            statementTimeoutMs: try statementTimeout.map { Int(try parseDuration($0, option: "--statement-timeout").milliseconds) })
        return try payloadJSON(payload)
    }
}

/// The options of `migrate-revert`.
struct MigrateRevertOptions: ParsableArguments {
    @OptionGroup var source: MigrationSource
    @Option(help: "Revert the newest N applied migrations (default 1).") var steps: Int?
    @Option(help: "Revert every applied migration newer than this version (0: all).") var to: String?
    @Option(help: "lock_timeout of every statement (default 2s).") var lockTimeout: String?
    @Option(help: "statement_timeout of every statement (default: none).") var statementTimeout: String?

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        if steps != nil && to != nil { throw ValidationError("give --steps N or --to VERSION, not both") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, not \(steps)") }
        let payload = MigrateRevertJob.Payload(
            database: source.database, files: try source.files(configuration), steps: steps, to: to,
            lockTimeoutMs: try lockTimeout.map { Int(try parseDuration($0, option: "--lock-timeout").milliseconds) },
            statementTimeoutMs: try statementTimeout.map { Int(try parseDuration($0, option: "--statement-timeout").milliseconds) })
        return try payloadJSON(payload)
    }
}





struct MigrationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrations", abstract: "A database's migrations: status, plan, lint.",
        subcommands: [Status.self, Plan.self, Lint.self])

    static func applied(_ source: MigrationSource, _ configuration: DBQConfiguration) async throws -> [AppliedMigration] {
        let env = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: makeLogger("dbq.migrations"))
        let url = try env.database(source.database)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(url.raw, logger: makeLogger("dbq.migrations"), applicationName: "dbq migrations")
        } catch {
            throw DatabaseScope.classifyConnect(error, database: source.database)
        }
        defer { Task { await connection.close() } }
        return try await MigrationRunner.applied(connection)
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Every migration: applied (when), partial, pending, changed since applied, or missing its file.")
        @OptionGroup var source: MigrationSource
        @OptionGroup var config: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let configuration = try config.load()
                let files = try source.files(configuration)
                let lines = MigrationPlanner.status(files: files, applied: try await MigrationsCommand.applied(source, configuration))
                if json {
                    try printJSON(lines.map { ["version": $0.version, "name": $0.name, "state": $0.state, "detail": $0.detail] })
                    return
                }
                print("VERSION  NAME                                STATE     DETAIL")
                for line in lines {
                    print([pad(line.version, 8), pad(line.name, 35), pad(line.state, 9), line.detail].joined(separator: " "))
                }
                let bad = lines.filter { ["changed", "missing", "partial"].contains($0.state) }
                if !bad.isEmpty { stderrLine("\(bad.count) migration(s) need attention: \(bad.map { "\($0.version) \($0.state)" }.joined(separator: ", "))") }
            }
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan", abstract: "What 'migrate' would apply now: each pending file, how it runs, and its lint findings.")
        @OptionGroup var source: MigrationSource
        @OptionGroup var config: ConfigOptions
        @Option(help: "Up to this version.") var to: String?
        @Flag(help: "Allow a new file older than the newest applied one.") var outOfOrder = false

        func run() async throws {
            try await reportingFailures {
                let configuration = try config.load()
                let files = try source.files(configuration)
                let steps: [MigrationPlanner.Step]
                do {
                    steps = try MigrationPlanner.pending(files: files, applied: try await MigrationsCommand.applied(source, configuration), target: to, outOfOrder: outOfOrder)
                } catch let refusal as MigrationPlanner.Refusal { throw CheckFailure(refusal.description) }
                if steps.isEmpty { print("nothing to apply: database '\(source.database)' is at the newest migration"); return }
                var blocking = 0
                for step in steps {
                    let analysis = try MigrationAnalysis.analyze(step.file.up, file: step.file.upFile)
                    let mode = analysis.transactional ? "one transaction" : "statement by statement (\(analysis.nonTransactionalReasons.joined(separator: "; ")))"
                    print("\(step.file.upFile): \(analysis.statements.count) statements, \(mode)" + (step.resumeAt > 0 ? ", resuming after statement \(step.resumeAt)" : ""))
                    for finding in analysis.findings { print("  " + finding.description) }
                    blocking += analysis.blocking.count
                }
                if blocking > 0 { throw CheckFailure("\(blocking) dangerous statement(s) would refuse the run; allow one on purpose with '-- dbq:allow RULE' or --allow RULE") }
            }
        }
    }

    struct Lint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lint", abstract: "Check every migration file against the rules (no database needed); exit 1 on a dangerous finding not allowed.",
            discussion: "Rules: " + LintRule.allCases.map(\.rawValue).joined(separator: ", ") + ".")
        @OptionGroup var source: MigrationSource
        @OptionGroup var config: ConfigOptions
        @Option(help: "Allow a rule (repeatable).") var allow: [String] = []
        @Flag(help: "Print the findings as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let files = try source.files(try config.load())
                var findings: [LintFinding] = []
                for file in files { findings += try MigrationAnalysis.analyze(file.up, file: file.upFile, allow: Set(allow)).findings }
                if json { try printJSON(findings) } else {
                    for finding in findings { print(finding.description) }
                    stderrLine("\(files.count) files, \(findings.count) findings")
                }
                let blocking = findings.filter { $0.severity == .danger && !$0.allowed }
                if !blocking.isEmpty { throw CheckFailure("\(blocking.count) dangerous finding(s) not allowed") }
            }
        }
    }
}


/// The options of `validate-integrity`.
struct ValidateIntegrityOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String
    @Option(help: "Migration files whose pending constraints to check too (default: migrations: {DATABASE: FOLDER} of dbq.yaml, if any).")
    var dir: String?
    @Option(help: "Sample keys per finding (default 5, at most 100).") var samples: Int?

    func payload(_ configuration: DBQConfiguration) throws -> JSONValue {
        let source = try MigrationSource.parse(["--database", database] + (dir.map { ["--dir", $0] } ?? []))
        let files = dir != nil || configuration.migrations[database] != nil ? try source.files(configuration) : nil
        if files == nil, !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        let payload = ValidateIntegrityJob.Payload(database: database, files: files, samples: samples)
        return try payloadJSON(payload)
    }
}



extension MigrateOptions: RequiredKindOptions {
    static var kind: String { MigrateJob.kind }
    static var abstract: String { "Apply a database's pending migration files (read here, sent with the job)." }
    static var discussion: String {
        "Each file runs in one transaction, or statement by statement when it holds CONCURRENTLY, VACUUM or ALTER SYSTEM; every statement under lock_timeout, retried with backoff. One run per database at a time. Dangerous statements (dbq migrations lint) refuse the run unless allowed with '-- dbq:allow RULE' or --allow RULE."
    }
}

extension MigrateRevertOptions: RequiredKindOptions {
    static var kind: String { MigrateRevertJob.kind }
    static var abstract: String { "Run down files of applied migrations, newest first (--steps N or --to VERSION)." }
}

extension ValidateIntegrityOptions: RequiredKindOptions {
    static var kind: String { ValidateIntegrityJob.kind }
    static var abstract: String { "Count (read-only) rows that break a foreign key or NOT VALID check, or would break a pending migration's NOT NULL or UNIQUE." }
}
