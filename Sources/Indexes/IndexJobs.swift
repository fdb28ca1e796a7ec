import DatabaseJobs
import DBQSupport
import Foundation
import Logging
import PostgresClient
import PostgresParser
import Queue
import Synchronization

/// `create-index`: always CONCURRENTLY, under lock_timeout with retries; never leaves an
/// INVALID index (a failed build's leftover is dropped, an INVALID index of the requested
/// name is rebuilt, not skipped); partitioned tables one partition at a time, then the
/// parent `ON ONLY` and attached; checked valid and, with `check`, used by the planner.
public struct CreateIndexJob: DatabaseJob {
    public static let kind = "create-index"
    public static var lockClass: DatabaseLockClass? { .build }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(12 * 3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var table: String?
        public var columns: [String]?
        public var predicate: String?
        public var method: String?
        public var include: [String]?
        public var unique: Bool?
        public var name: String?
        /// `CREATE INDEX CONCURRENTLY name ON …` instead of the fields above.
        public var sql: String?
        /// A statement whose plan should use the new index.
        public var check: String?
        /// Fail the job when the check's plan does not use the index.
        public var requireUse: Bool?
        public var lockTimeoutMs: Int?

        public init(database: String, table: String? = nil, columns: [String]? = nil, predicate: String? = nil, method: String? = nil,
                    include: [String]? = nil, unique: Bool? = nil, name: String? = nil, sql: String? = nil, check: String? = nil,
                    requireUse: Bool? = nil, lockTimeoutMs: Int? = nil) {
            self.database = database
            self.table = table
            self.columns = columns
            self.predicate = predicate
            self.method = method
            self.include = include
            self.unique = unique
            self.name = name
            self.sql = sql
            self.check = check
            self.requireUse = requireUse
            self.lockTimeoutMs = lockTimeoutMs
        }

        public func spec() throws -> IndexBuildSpec {
            do {
                if let sql { return try IndexBuildPlan.spec(sql: sql) }
                guard let table else { throw IndexBuildPlan.Problem(description: "create-index needs --table and --columns, or --sql") }
                return try IndexBuildPlan.spec(table: table, columns: columns ?? [], method: method, include: include ?? [], predicate: predicate,
                                               unique: unique ?? false, name: name)
            } catch let problem as IndexBuildPlan.Problem {
                throw JobError.permanent(problem.description)
            }
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let spec = try payload.spec()
        return try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            try await IndexBuilder.with(database, lockTimeoutMs: payload.lockTimeoutMs) {
                try await $0.create(spec, check: payload.check, requireUse: payload.requireUse ?? false)
            }
        }
    }
}

/// The payload of the kinds that act on one existing index (drop-index, reindex).
public struct IndexPayload: Codable, Sendable {
    public var database: String
    /// `schema.index` or a name in `public`.
    public var index: String
    public var lockTimeoutMs: Int?
    public init(database: String, index: String, lockTimeoutMs: Int? = nil) {
        self.database = database
        self.index = index
        self.lockTimeoutMs = lockTimeoutMs
    }
}

/// `drop-index`: DROP INDEX CONCURRENTLY under lock_timeout with retries; never an index
/// that backs a constraint.
public struct DropIndexJob: DatabaseJob {
    public static let kind = "drop-index"
    public static var lockClass: DatabaseLockClass? { .build }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(3600) }
    public typealias Payload = IndexPayload

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            try await IndexBuilder.with(database, lockTimeoutMs: payload.lockTimeoutMs) { try await $0.drop(payload.index) }
        }
    }
}

/// `reindex`: REINDEX INDEX CONCURRENTLY under lock_timeout with retries; a failed
/// rebuild's leftover (`…_ccnew`) is dropped.
public struct ReindexJob: DatabaseJob {
    public static let kind = "reindex"
    public static var lockClass: DatabaseLockClass? { .build }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(12 * 3600) }
    public typealias Payload = IndexPayload

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            try await IndexBuilder.with(database, lockTimeoutMs: payload.lockTimeoutMs) { try await $0.reindex(payload.index) }
        }
    }
}

/// `index-advice`: the report `dbq indexes advise` prints, as a job result.
public struct IndexAdviceJob: DatabaseJob {
    public static let kind = "index-advice"
    public static var lockClass: DatabaseLockClass? { .read }
    public static var defaultMaxAttempts: Int { 2 }
    public static var defaultTimeout: Duration { .seconds(3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        public var minCalls: Int64?
        public var minMeanMs: Double?
        public var minSavings: Double?
        public init(database: String, minCalls: Int64? = nil, minMeanMs: Double? = nil, minSavings: Double? = nil) {
            self.database = database
            self.minCalls = minCalls
            self.minMeanMs = minMeanMs
            self.minSavings = minSavings
        }

        public var options: WorkloadAdvisor.Options {
            var options = WorkloadAdvisor.Options()
            if let minCalls { options.minCalls = minCalls }
            if let minMeanMs { options.minMeanMs = minMeanMs }
            if let minSavings { options.minSavings = minSavings }
            return options
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let report = try await env.withDatabase(payload.database, for: Self.self, context: context) { database in
            try await IndexAdvice.report(database.url, database: database.name, options: payload.options, logger: context.logger)
        }
        return try JSONValue(json: String(decoding: try JSONEncoder().encode(report), as: UTF8.self))
    }
}

/// The whole advice: the workload's missing indexes and the catalog checks.
public struct IndexAdvice: Sendable, Codable {
    public var database: String
    public var findings: [IndexFinding]
    /// What is missing (pg_stat_statements, HypoPG) and how to enable it.
    public var notes: [String]
    public var statsAgeSeconds: Double?
    public var seconds: Double

    public static func report(_ url: PostgresConnectionString, database: String, options: WorkloadAdvisor.Options, logger: Logger) async throws -> IndexAdvice {
        let started = ContinuousClock.now
        return try await DatabaseScope.withConnection(url, database: database, application: "dbq index-advice", logger: logger) { connection in
            try await report(connection, database: database, options: options, started: started)
        }
    }

    static func report(_ connection: PostgresConnection, database: String, options: WorkloadAdvisor.Options, started: ContinuousClock.Instant) async throws -> IndexAdvice {
        let catalog = try await IndexCatalogQuery.load(connection)
        let availability = try await WorkloadAdvisor.availability(connection, database: database)
        var findings = try await WorkloadAdvisor.advise(connection, catalog: catalog, availability: availability, options: options)
        findings += IndexChecks.findings(catalog)
        findings.sort { ($0.priority, $0.kind == .missing ? 0 : 1) < ($1.priority, $1.kind == .missing ? 0 : 1) }
        return IndexAdvice(database: database, findings: findings, notes: availability.notes, statsAgeSeconds: catalog.statsAgeSeconds,
                           seconds: (ContinuousClock.now - started).seconds)
    }
}

extension JobRegistry {
    /// Registers index-advice, create-index, drop-index and reindex.
    public mutating func registerIndexJobs(environment: @escaping JobEnvironment.Provider) {
        register(IndexAdviceJob.self, environment: environment)
        register(CreateIndexJob.self, environment: environment)
        register(DropIndexJob.self, environment: environment)
        register(ReindexJob.self, environment: environment)
    }
}
