import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import PostgresParser
import Queue
import Synchronization

/// Where a migration job's files come from: sent with the job by the pusher (so workers
/// need not have them), or else the worker's own `migrations:` folder for the database.
func migrationFiles(_ sent: [MigrationFile]?, database: String, env: JobEnvironment) throws -> (files: [MigrationFile], source: String) {
    if let sent { return (sent, "the job") }
    guard let folder = env.configuration.migrations[database] else {
        throw JobError.permanent("no migration files: the job carries none and this worker's configuration has no migrations: {\(database): FOLDER}")
    }
    do { return (try MigrationFiles.load(directory: folder), folder) } catch { throw JobError.permanent("\(error)") }
}

/// Parses and lints every file of `steps`; a syntax error or a dangerous finding not
/// allowed refuses the whole run before anything is applied.
func analyze(_ files: [MigrationFile], down: Bool = false, allow: Set<String>, volatileFunctions: Set<String>? = nil) throws -> [String: MigrationAnalysis] {
    var analyses: [String: MigrationAnalysis] = [:]
    var blocking: [LintFinding] = []
    for file in files {
        let name = down ? file.downFile : file.upFile
        do {
            let analysis = try MigrationAnalysis.analyze(down ? file.down ?? "" : file.up, file: name, allow: allow, volatileFunctions: volatileFunctions)
            analyses[file.version] = analysis
            if !down { blocking += analysis.blocking }
        } catch {
            throw JobError.permanent("\(name): \(error); nothing was applied")
        }
    }
    if !blocking.isEmpty {
        throw JobError.permanent("\(blocking.count) dangerous statement\(blocking.count == 1 ? "" : "s"), nothing was applied:\n" + blocking.map { "  " + $0.description }.joined(separator: "\n")
            + "\nAllow one on purpose with '-- dbq:allow RULE' on the statement or --allow RULE.")
    }
    return analyses
}

/// `migrate`: applies the pending migration files of a database, in order, each once.
public struct MigrateJob: SchemaChangeJob {
    public static let kind = "migrate"

    public struct Payload: Codable, Sendable {
        public var database: String
        /// The files (read by the pusher); nil: the worker's configured folder.
        public var files: [MigrationFile]?
        /// Apply up to this version (default: all).
        public var to: String?
        public var dryRun: Bool?
        /// Snapshot the tables the pending files change first (named in the result).
        public var snapshot: Bool?
        public var storage: String?
        /// Lint rules allowed for this run.
        public var allow: [String]?
        /// Apply a new file older than the newest applied one.
        public var outOfOrder: Bool?
        public var lockTimeoutMs: Int?
        public var statementTimeoutMs: Int?

        public init(database: String, files: [MigrationFile]? = nil, to: String? = nil, dryRun: Bool? = nil, snapshot: Bool? = nil, storage: String? = nil,
                    allow: [String]? = nil, outOfOrder: Bool? = nil, lockTimeoutMs: Int? = nil, statementTimeoutMs: Int? = nil) {
            self.database = database
            self.files = files
            self.to = to
            self.dryRun = dryRun
            self.snapshot = snapshot
            self.storage = storage
            self.allow = allow
            self.outOfOrder = outOfOrder
            self.lockTimeoutMs = lockTimeoutMs
            self.statementTimeoutMs = statementTimeoutMs
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let url = try env.database(payload.database)
        let (files, _) = try migrationFiles(payload.files, database: payload.database, env: env)
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await Self.migrate(payload, files: files, url: url, env: env, context: context)
        }
    }

    static func migrate(_ payload: Payload, files: [MigrationFile], url: PostgresConnectionString, env: JobEnvironment, context: JobContext) async throws -> JSONValue {
        try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq migrate", logger: context.logger) { connection in
            try await migrate(payload, files: files, url: url, env: env, context: context, connection: connection)
        }
    }

    private static func migrate(_ payload: Payload, files: [MigrationFile], url: PostgresConnectionString, env: JobEnvironment, context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let runner = MigrationRunner(connection: connection, database: payload.database,
                                     retry: LockRetry(lockTimeoutMs: payload.lockTimeoutMs),
                                     statementTimeoutMs: payload.statementTimeoutMs ?? 0, logger: context.logger)
        let dryRun = payload.dryRun ?? false
        if !dryRun {
            try await runner.lock(wait: .seconds(600)) { await context.progress(JobProgress(message: $0)) }
        }
        // The advisory lock is the session's: it ends with the connection, which the scope closes.
        if !dryRun { try await MigrationRunner.ensureTable(connection) }
        let applied = try await MigrationRunner.applied(connection)
        let steps: [MigrationPlanner.Step]
        do {
            steps = try MigrationPlanner.pending(files: files, applied: applied, target: payload.to, outOfOrder: payload.outOfOrder ?? false)
        } catch {
            throw JobError.permanent("\(error); nothing was applied")
        }
        let analyses = try analyze(steps.map(\.file), allow: Set(payload.allow ?? []), volatileFunctions: try await MigrationAnalysis.volatileFunctions(connection))
        var result = Result(database: payload.database, dryRun: dryRun, plan: steps.map { step in
            let a = analyses[step.file.version]!
            return Result.Step(version: step.file.version, name: step.file.name, transactional: a.transactional, statements: a.statements.count,
                               resumeAt: step.resumeAt > 0 ? step.resumeAt : nil,
                               nonTransactional: a.nonTransactionalReasons.isEmpty ? nil : a.nonTransactionalReasons,
                               findings: a.findings.isEmpty ? nil : a.findings.map(\.description))
        })
        if dryRun || steps.isEmpty {
            result.version = applied.filter { !$0.isPartial }.map(\.version).max()
            return try result.json
        }
        if payload.snapshot ?? false {
            let touched = Array(Set(steps.flatMap { analyses[$0.file.version]!.touchedTables })).sorted()
            let existing = try await SnapshotQueries.shapes(connection)
            let tables = touched.filter { existing[$0] != nil }
            if tables.isEmpty {
                result.snapshot = Result.Snapshot.none
                result.snapshotNote = "the pending migrations change no existing table's rows or shape"
            } else {
                let store = try env.store(payload.storage).store
                let manifest = try await TableSnapshot.take(
                    SnapshotRequest(database: payload.database, tables: tables,
                          label: "before migrating to \(steps.last!.file.version)_\(steps.last!.file.name)"),
                    url: url, store: store, objectLimit: env.objectLimit(payload.storage), codec: .zstd, context: context)
                result.snapshot = .taken(manifest.id)
            }
        }
        for (index, step) in steps.enumerated() {
            await context.progress(JobProgress(fraction: Double(index) / Double(steps.count), message: "applying \(step.file.upFile)"))
            let ms = try await runner.apply(step, analysis: analyses[step.file.version]!, jobID: context.id)
            result.applied.append(Result.Applied(version: step.file.version, name: step.file.name, ms: ms,
                                                 transactional: analyses[step.file.version]!.transactional))
        }
        result.version = steps.last!.file.version
        result.lockWaits = runner.lockWaits
        return try result.json
    }

    /// The plan, what was applied, and the version the database is at.
    public struct Result: JobResult {
        public struct Step: Encodable, Sendable {
            public var version: String
            public var name: String
            public var transactional: Bool
            public var statements: Int
            /// The statement a part-done file resumes at.
            public var resumeAt: Int?
            public var nonTransactional: [String]?
            public var findings: [String]?
        }
        public struct Applied: Encodable, Sendable {
            public var version: String
            public var name: String
            public var ms: Int64
            public var transactional: Bool?
        }
        /// The snapshot taken first: its id, or `null` when the migrations touch no existing table.
        public enum Snapshot: Encodable, Sendable {
            case none
            case taken(String)
            public func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .none: try container.encodeNil()
                case .taken(let id): try container.encode(id)
                }
            }
        }
        public var database: String
        public var dryRun: Bool
        public var plan: [Step]
        public var applied: [Applied] = []
        @ExplicitNull public var version: String?
        public var snapshot: Snapshot?
        public var snapshotNote: String?
        public var lockWaits: Int?
    }
}

/// `migrate-revert`: runs down files, newest first.
public struct MigrateRevertJob: SchemaChangeJob {
    public static let kind = "migrate-revert"

    public struct Payload: Codable, Sendable {
        public var database: String
        public var files: [MigrationFile]?
        public var steps: Int?
        public var to: String?
        public var lockTimeoutMs: Int?
        public var statementTimeoutMs: Int?

        public init(database: String, files: [MigrationFile]? = nil, steps: Int? = nil, to: String? = nil, lockTimeoutMs: Int? = nil, statementTimeoutMs: Int? = nil) {
            self.database = database
            self.files = files
            self.steps = steps
            self.to = to
            self.lockTimeoutMs = lockTimeoutMs
            self.statementTimeoutMs = statementTimeoutMs
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        _ = try env.database(payload.database)
        if payload.steps != nil && payload.to != nil { throw JobError.permanent("give --steps N or --to VERSION, not both") }
        let (files, _) = try migrationFiles(payload.files, database: payload.database, env: env)
        return try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            try await database.withConnection(application: "dbq migrate-revert") { connection in
                try await Self.revert(payload, files: files, connection: connection, context: context)
            }
        }
    }

    static func revert(_ payload: Payload, files: [MigrationFile], connection: PostgresConnection, context: JobContext) async throws -> JSONValue {
        let runner = MigrationRunner(connection: connection, database: payload.database,
                                     retry: LockRetry(lockTimeoutMs: payload.lockTimeoutMs),
                                     statementTimeoutMs: payload.statementTimeoutMs ?? 0, logger: context.logger)
        try await runner.lock(wait: .seconds(600)) { await context.progress(JobProgress(message: $0)) }
        // The advisory lock is the session's: it ends with the connection, which the scope closes.
        let applied = try await MigrationRunner.applied(connection)
        let chosen: [(AppliedMigration, MigrationFile)]
        do {
            chosen = try MigrationPlanner.revert(files: files, applied: applied, steps: payload.steps, to: payload.to)
        } catch {
            throw JobError.permanent("\(error); nothing was reverted")
        }
        let analyses = try analyze(chosen.map(\.1), down: true, allow: [])
        var reverted: [Result.Reverted] = []
        for (index, (row, file)) in chosen.enumerated() {
            await context.progress(JobProgress(fraction: Double(index) / Double(chosen.count), message: "reverting \(file.downFile)"))
            let ms = try await runner.revert(row, file: file, analysis: analyses[file.version]!)
            reverted.append(Result.Reverted(version: row.version, name: row.name, ms: ms))
        }
        let now = try await MigrationRunner.applied(connection).filter { !$0.isPartial }.map(\.version).max()
        return try Result(database: payload.database, reverted: reverted, version: now).json
    }

    /// The files reverted, newest first, and the version the database is at now.
    public struct Result: JobResult {
        public struct Reverted: Encodable, Sendable {
            public var version: String
            public var name: String
            public var ms: Int64
        }
        public var database: String
        public var reverted: [Reverted]
        @ExplicitNull public var version: String?
    }
}

extension JobRegistry {
    /// Registers migrate, migrate-revert and validate-integrity.
    public mutating func registerMigrationJobs(environment: @escaping JobEnvironment.Provider) {
        register(MigrateJob.self, environment: environment)
        register(MigrateRevertJob.self, environment: environment)
        register(ValidateIntegrityJob.self, environment: environment)
    }
}
