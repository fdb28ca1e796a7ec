import DatabaseJobs
import DBQSupport
import Foundation
import Logging
import PostgresClient
import PostgresParser
import Queue
import Synchronization

/// Builds, drops and rebuilds indexes on one connection, concurrently, under lock_timeout
/// with retries, cleaning up whatever a failed build leaves; a second connection watches
/// `pg_stat_progress_create_index` for the job's progress.
final class IndexBuilder: @unchecked Sendable {
    // @unchecked Sendable: one job uses it, one call at a time.
    let connection: PostgresConnection
    let url: PostgresConnectionString
    let database: String
    let retry: LockRetry
    let context: JobContext
    private(set) var lockWaits = 0

    private init(connection: PostgresConnection, url: PostgresConnectionString, database: String, retry: LockRetry, context: JobContext) {
        self.connection = connection
        self.url = url
        self.database = database
        self.retry = retry
        self.context = context
    }

    /// Runs `body` with a builder on a new connection to the scope's database, closed
    /// (awaited) however `body` ends.
    static func with<T>(_ database: DatabaseScope, lockTimeoutMs: Int?, _ body: (IndexBuilder) async throws -> T) async throws -> T {
        try await database.withConnection(application: "dbq \(database.context.kind)") { connection in
            // A worker killed mid-build: its server process notices within a second and stops,
            // leaving an INVALID index the retry drops (instead of finishing a build nobody owns).
            _ = try await connection.execute("SET client_connection_check_interval = '1s'")
            return try await body(IndexBuilder(connection: connection, url: database.url, database: database.name,
                                               retry: LockRetry(lockTimeoutMs: lockTimeoutMs, attempts: 10), context: database.context))
        }
    }

    // MARK: - create

    func create(_ spec: IndexBuildSpec, check: String?, requireUse: Bool) async throws -> JSONValue {
        let started = ContinuousClock.now
        let qualifiedTable = "\(IndexCatalog.quotedIfNeeded(spec.schema)).\(IndexCatalog.quotedIfNeeded(spec.table))"
        guard let kind = try await connection.query("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", [PostgresParameter(qualifiedTable)]).scalar else {
            throw JobError.permanent("database '\(database)' has no table \(spec.qualifiedTable)")
        }
        guard kind == "r" || kind == "p" || kind == "m" else {
            throw JobError.permanent("\(spec.qualifiedTable) is not a table (relkind \(kind)); indexes go on tables and materialized views")
        }
        var result = IndexJobResult(database: database, index: "\(spec.schema).\(spec.name)", outcome: "", table: spec.qualifiedTable)
        var names = [spec.name]
        switch try await state(of: spec.qualifiedName) {
        case .valid?:
            result.outcome = "exists"
            result.note = "a valid index of this name exists; nothing was built"
        case .invalid? where kind == "p" && spec.sql == nil:
            // A partitioned table's index is INVALID until every partition's is attached: a
            // build stopped while attaching left it so. Resumed: the partitions' indexes
            // missing are built, the unattached attached (a partitioned index cannot be
            // dropped concurrently, and need not be).
            context.logger.info("an INVALID partitioned index of the requested name exists: its partitions are completed", metadata: ["index": "\(spec.name)"])
            names += try await createPartitioned(spec)
            result.outcome = "built"
        case .invalid?:
            context.logger.info("an INVALID index of the requested name exists: dropped, then built", metadata: ["index": "\(spec.name)"])
            try await dropInvalid(spec.qualifiedName)
            fallthrough
        case nil:
            if kind == "p" {
                guard spec.sql == nil else {
                    throw JobError.permanent("\(spec.qualifiedTable) is partitioned: give --table and --columns (dbq builds each partition concurrently, then the parent ON ONLY)")
                }
                names += try await createPartitioned(spec)
            } else {
                try await build(IndexBuildPlan.createSQL(spec), name: spec.qualifiedName, table: qualifiedTable)
            }
            result.outcome = "built"
        }
        // Valid and ready, or it is not done.
        let flags = try await connection.query("""
            SELECT i.indisvalid AND i.indisready, pg_relation_size(i.indexrelid) + coalesce((SELECT sum(pg_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = i.indexrelid), 0)
            FROM pg_index i WHERE i.indexrelid = to_regclass($1)
            """, [PostgresParameter(spec.qualifiedName)]).first
        guard flags?[0] == "t" else {
            throw JobError.retryable("index \(spec.schema).\(spec.name) is not valid and ready after its build; the job will be tried again")
        }
        result.bytes = Int64(flags?[1] ?? "0") ?? 0
        result.seconds = (ContinuousClock.now - started).seconds
        result.lockWaits = lockWaits
        if let check {
            let used = try await planUses(check, names: Set(names))
            result.checkUsesIndex = used.used
            result.checkPlan = used.summary
            if requireUse && !used.used {
                throw JobError.permanent("the plan of the check statement does not use \(spec.schema).\(spec.name) (\(used.summary)); the index stays, valid: drop it with dbq push drop-index if it is not wanted")
            }
        }
        return try result.json
    }

    enum IndexState { case valid, invalid }

    func state(of qualifiedName: String) async throws -> IndexState? {
        guard let row = try await connection.query("SELECT indisvalid AND indisready FROM pg_index WHERE indexrelid = to_regclass($1)",
                                                   [PostgresParameter(qualifiedName)]).first else { return nil }
        return row[0] == "t" ? .valid : .invalid
    }

    /// One concurrent build with retries; whatever a failed attempt leaves is dropped first.
    func build(_ sql: String, name: String, table: String) async throws {
        try await retry.run(connection, what: "index \(name)", logger: context.logger, waited: { [self] n in
            lockWaits = n
            await context.progress(JobProgress(message: "waiting for locks or old transactions (attempt \(n + 1))"))
        }) {
            do {
                try await withProgress(table: table) { _ = try await self.connection.execute(sql) }
            } catch {
                try? await dropInvalid(name)
                if LockRetry.isLockTimeout(error) || (error as? PostgresError)?.isTransient == true { throw error }
                let message = (error as? PostgresError).map { $0.message + ($0.detail.map { " (\($0))" } ?? "") } ?? "\(error)"
                throw JobError.permanent("building index \(name) failed: \(message); the INVALID index it left was dropped")
            }
        }
    }

    /// Each partition concurrently, then the parent's index ON ONLY, each partition's attached.
    func createPartitioned(_ spec: IndexBuildSpec) async throws -> [String] {
        let partitions = try await connection.query("""
            SELECT n.nspname, c.relname, c.relkind::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.inhparent = to_regclass($1) ORDER BY 2
            """, [PostgresParameter("\(IndexCatalog.quotedIfNeeded(spec.schema)).\(IndexCatalog.quotedIfNeeded(spec.table))")])
        var children: [String] = []
        for (index, row) in partitions.enumerated() {
            guard let schema = row[0], let name = row[1] else { continue }
            guard row[2] == "r" else {
                throw JobError.permanent("partition \(schema).\(name) of \(spec.qualifiedTable) is itself partitioned; build its index first with --table \(schema).\(name)")
            }
            let childName = IndexBuildPlan.partitionIndexName(spec.name, partition: name)
            let qualifiedChild = "\(IndexCatalog.quotedIfNeeded(schema)).\(IndexCatalog.quotedIfNeeded(childName))"
            await context.progress(JobProgress(fraction: Double(index) / Double(max(partitions.count, 1)), message: "partition \(schema).\(name)"))
            if try await state(of: qualifiedChild) == .invalid { try await dropInvalid(qualifiedChild) }
            if try await state(of: qualifiedChild) == nil {
                try await build(IndexBuildPlan.createSQL(spec, on: (schema, name), name: childName), name: qualifiedChild,
                                table: "\(IndexCatalog.quotedIfNeeded(schema)).\(IndexCatalog.quotedIfNeeded(name))")
            }
            children.append(qualifiedChild)
        }
        try await retry.run(connection, what: "index \(spec.qualifiedName) on the parent", logger: context.logger) {
            _ = try await connection.execute(IndexBuildPlan.createSQL(spec, concurrently: false, only: true).replacingOccurrences(of: "CREATE INDEX ", with: "CREATE INDEX IF NOT EXISTS ")
                .replacingOccurrences(of: "CREATE UNIQUE INDEX ", with: "CREATE UNIQUE INDEX IF NOT EXISTS "))
        }
        for child in children {
            let attached = try await connection.query("""
                SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2))
                """, [PostgresParameter(child), PostgresParameter(spec.qualifiedName)]).scalar == "t"
            if !attached {
                try await retry.run(connection, what: "attaching \(child)", logger: context.logger) {
                    _ = try await connection.execute("ALTER INDEX \(spec.qualifiedName) ATTACH PARTITION \(child)")
                }
            }
        }
        return children.map { String($0.split(separator: ".").last ?? "").replacingOccurrences(of: "\"", with: "") }
    }

    /// Runs `body` while a second connection reports the build's phase and blocks.
    func withProgress(table: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let pid = try await connection.query("SELECT pg_backend_pid()").scalar ?? "0"
        try await ProgressWatch.run(url: url, context: context, query: """
            SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total FROM pg_stat_progress_create_index WHERE pid = \(Int(pid) ?? 0)
            """, report: { row in
                guard let phase = row[0] else { return nil }
                let blocks = (Double(row[1] ?? "0") ?? 0, Double(row[2] ?? "0") ?? 0)
                let tuples = (Double(row[3] ?? "0") ?? 0, Double(row[4] ?? "0") ?? 0)
                let fraction = blocks.1 > 0 ? blocks.0 / blocks.1 : tuples.1 > 0 ? tuples.0 / tuples.1 : nil
                return JobProgress(fraction: fraction, message: phase)
            }, body)
    }

    /// Drops an index left INVALID (never a valid one): concurrently, but for a
    /// partitioned index, which PostgreSQL drops only plainly.
    func dropInvalid(_ qualifiedName: String) async throws {
        guard try await state(of: qualifiedName) == .invalid else { return }
        let partitioned = try await connection.query("SELECT relkind = 'I' FROM pg_class WHERE oid = to_regclass($1)", [PostgresParameter(qualifiedName)]).scalar == "t"
        try await retry.run(connection, what: "dropping the invalid index \(qualifiedName)", logger: context.logger) {
            _ = try await connection.execute("DROP INDEX \(partitioned ? "" : "CONCURRENTLY ")IF EXISTS \(qualifiedName)")
        }
    }

    /// Whether `statement`'s plan scans any of `names`; and the plan's nodes, briefly.
    func planUses(_ statement: String, names: Set<String>) async throws -> (used: Bool, summary: String) {
        let parsed: [ParsedStatement]
        do { parsed = try SQLParser.parse(statement) } catch { throw JobError.permanent("--check does not parse: \(error)") }
        guard parsed.count == 1, ["SelectStmt", "UpdateStmt", "DeleteStmt"].contains(parsed[0].type) else {
            throw JobError.permanent("--check must be one SELECT, UPDATE or DELETE statement")
        }
        let text: String
        do {
            text = try await connection.query("EXPLAIN (FORMAT JSON) \(statement)").scalar ?? "[]"
        } catch let error as PostgresError {
            throw JobError.permanent("--check cannot be planned: \(error.message)")
        }
        var used = false
        var nodes: [String] = []
        func walk(_ node: ParseNode) {
            if let type = node["Node Type"]?.string {
                let index = node["Index Name"]?.string
                nodes.append(type + (index.map { " using \($0)" } ?? "") + (node["Relation Name"]?.string.map { " on \($0)" } ?? ""))
                if let index, names.contains(index) { used = true }
            }
            for child in node["Plans"]?.array ?? [] { walk(child) }
        }
        if let plan = ParseNode.json(text)?.array.first?["Plan"] { walk(plan) }
        return (used, nodes.joined(separator: " → "))
    }

    // MARK: - drop and reindex

    func qualified(_ index: String) throws -> String {
        let parts = index.split(separator: ".", maxSplits: 1).map(String.init)
        let (schema, name) = parts.count == 2 ? (parts[0], parts[1]) : ("public", parts[0])
        return "\(IndexCatalog.quotedIfNeeded(schema)).\(IndexCatalog.quotedIfNeeded(name))"
    }

    func drop(_ index: String) async throws -> JSONValue {
        let name = try qualified(index)
        guard let row = try await connection.query("""
            SELECT c.relkind::text, (SELECT con.conname FROM pg_constraint con WHERE con.conindid = c.oid AND con.contype IN ('p', 'u', 'x') LIMIT 1)
            FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('i', 'I')
            """, [PostgresParameter(name)]).first else {
            return try IndexJobResult(database: database, index: index, outcome: "absent").json
        }
        if let constraint = row[1] {
            throw JobError.permanent("index \(index) backs constraint \(constraint): it is never dropped as an index (drop the constraint in a migration if you mean it)")
        }
        let concurrently = row[0] == "i"
        try await retry.run(connection, what: "dropping index \(index)", logger: context.logger) {
            _ = try await connection.execute("DROP INDEX \(concurrently ? "CONCURRENTLY " : "")IF EXISTS \(name)")
        }
        return try IndexJobResult(database: database, index: index, outcome: "dropped", concurrently: concurrently).json
    }

    func reindex(_ index: String) async throws -> JSONValue {
        let name = try qualified(index)
        guard let table = try await connection.query("SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = to_regclass($1)",
                                                     [PostgresParameter(name)]).scalar else {
            throw JobError.permanent("database '\(database)' has no index \(index)")
        }
        let started = ContinuousClock.now
        try await retry.run(connection, what: "reindex of \(index)", logger: context.logger) {
            do {
                try await withProgress(table: table) { _ = try await self.connection.execute("REINDEX INDEX CONCURRENTLY \(name)") }
            } catch {
                // A failed concurrent rebuild leaves <name>_ccnew (INVALID): dropped.
                let leftovers = try await ReindexLeftovers.drop(table: table, connection: connection)
                if LockRetry.isLockTimeout(error) || (error as? PostgresError)?.isTransient == true { throw error }
                throw JobError.permanent("reindex of \(index) failed: \((error as? PostgresError)?.message ?? "\(error)")\(leftovers.isEmpty ? "" : "; its leftover \(leftovers.joined(separator: ", ")) was dropped")")
            }
        }
        let size = try await connection.query("SELECT pg_relation_size(to_regclass($1))", [PostgresParameter(name)]).scalar
        return try IndexJobResult(database: database, index: index, outcome: "rebuilt", bytes: Int64(size ?? "0") ?? 0,
                                  seconds: (ContinuousClock.now - started).seconds).json
    }
}

/// What create-index, drop-index and reindex report.
public struct IndexJobResult: JobResult {
    public var database: String
    public var index: String
    /// `built`, `exists`, `dropped`, `absent` or `rebuilt`.
    public var outcome: String
    public var table: String?
    public var note: String?
    public var concurrently: Bool?
    public var bytes: Int64?
    public var seconds: Double?
    public var lockWaits: Int?
    /// Whether the plan of the check statement uses the new index, and that plan in brief.
    public var checkUsesIndex: Bool?
    public var checkPlan: String?
}
