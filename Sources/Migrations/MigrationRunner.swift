import DatabaseJobs
import DBQSupport
import Foundation
import Logging
import PostgresClient
import PostgresParser
import Queue

/// Applies and reverts migration files on one connection: the tracking table, the
/// database's migration lock, each file in one transaction (or statement by statement
/// when it must be), every statement under `lock_timeout` and retried on lock timeouts.
public final class MigrationRunner: @unchecked Sendable {
    // @unchecked Sendable: used by one job, one call at a time.
    public static let table = "public.\(SnapshotQueries.migrationsTable)"
    /// The advisory lock key of migration runs (any number; the same in every dbq).
    static let lockKey: Int64 = 0x6462_715F_6D69_6772 // "dbq_migr"

    let connection: PostgresConnection
    let database: String
    let retry: LockRetry
    let statementTimeoutMs: Int
    let logger: Logger
    private(set) var lockWaits = 0

    public init(connection: PostgresConnection, database: String, retry: LockRetry, statementTimeoutMs: Int = 0, logger: Logger) {
        self.connection = connection
        self.database = database
        self.retry = retry
        self.statementTimeoutMs = statementTimeoutMs
        self.logger = logger
    }

    public static func ensureTable(_ connection: PostgresConnection) async throws {
        _ = try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(table) (
                version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(), duration_ms bigint, job_id text,
                transactional boolean NOT NULL, state text NOT NULL DEFAULT 'applied', statements_done integer NOT NULL DEFAULT 0)
            """)
    }

    /// The tracking table's rows (none when it does not exist yet).
    public static func applied(_ connection: PostgresConnection) async throws -> [AppliedMigration] {
        guard try await connection.query("SELECT to_regclass('\(table)') IS NOT NULL").scalar == "t" else { return [] }
        return try await connection.query("""
            SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"'), duration_ms, job_id,
                   transactional, state, statements_done FROM \(table) ORDER BY version
            """).map { r in
            AppliedMigration(version: r[0] ?? "", name: r[1] ?? "", checksum: r[2] ?? "", appliedAt: r[3], durationMs: r[4].flatMap { Int64($0) },
                             jobID: r[5], transactional: r[6] == "t", state: r[7] ?? "applied", statementsDone: Int(r[8] ?? "0") ?? 0)
        }
    }

    /// Takes the database's migration lock: a session advisory lock taken with a
    /// non-blocking try, polled outside any transaction. A waiting run holds no snapshot,
    /// so it can never deadlock with a `CREATE INDEX CONCURRENTLY` of the run it waits for
    /// (the advisory-lock trap of flyway#1654 and golang-migrate#960).
    public func lock(wait: Duration, progress: @Sendable (String) async -> Void) async throws {
        let deadline = ContinuousClock.now + wait
        var told = false
        while true {
            if try await connection.query("SELECT pg_try_advisory_lock(\(Self.lockKey))").scalar == "t" { return }
            if !told {
                let holder = try await connection.query("""
                    SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.granted AND (l.classid::bigint << 32 | l.objid::bigint) = \(Self.lockKey) LIMIT 1
                    """).first
                await progress("waiting for another migration run (pid \(holder?[0] ?? "?"), \(holder?[1] ?? "")) to finish")
                told = true
            }
            guard ContinuousClock.now < deadline else {
                throw JobError.retryable("database '\(database)': another migration run holds the migration lock; this one will be tried again")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    public func unlock() async {
        _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))")
    }

    /// Applies one file (from `step.resumeAt` for a file an earlier run left part-done);
    /// records it in the tracking table. Returns the milliseconds it took.
    public func apply(_ step: MigrationPlanner.Step, analysis: MigrationAnalysis, jobID: String) async throws -> Int64 {
        let started = ContinuousClock.now
        if statementTimeoutMs > 0 { _ = try await connection.execute("SET statement_timeout = \(statementTimeoutMs)") }
        let file = step.file
        if analysis.transactional {
            try await inTransaction(file.upFile) {
                for statement in analysis.statements { try await run(statement, file: file.upFile, transactional: true) }
                let ms = (ContinuousClock.now - started).milliseconds
                _ = try await connection.query(
                    "INSERT INTO \(Self.table) (version, name, checksum, duration_ms, job_id, transactional) VALUES ($1, $2, $3, $4, $5, true)",
                    [PostgresParameter(file.version), PostgresParameter(file.name), PostgresParameter(file.checksum),
                     PostgresParameter(String(ms)), PostgresParameter(jobID)])
            }
        } else {
            if step.resumeAt == 0 {
                _ = try await connection.query("""
                    INSERT INTO \(Self.table) (version, name, checksum, job_id, transactional, state, statements_done)
                    VALUES ($1, $2, $3, $4, false, 'partial', 0) ON CONFLICT (version) DO NOTHING
                    """, [PostgresParameter(file.version), PostgresParameter(file.name), PostgresParameter(file.checksum), PostgresParameter(jobID)])
            }
            // A statement that can run in a transaction commits with its progress row, so a
            // crash between them cannot make the next run repeat it. One that cannot (a
            // concurrent index build, VACUUM …) is checked on a resume: what it does already
            // done is not done again.
            var userTransaction = false
            for (index, statement) in analysis.statements.enumerated() where index >= step.resumeAt {
                let progress = { [connection] in
                    _ = try await connection.query("UPDATE \(Self.table) SET statements_done = $2 WHERE version = $1",
                                                   [PostgresParameter(file.version), PostgresParameter(String(index + 1))])
                }
                if statement.type == "TransactionStmt" {
                    let kind = statement.body["kind"]?.string ?? ""
                    if ["TRANS_STMT_BEGIN", "TRANS_STMT_START"].contains(kind) { userTransaction = true }
                    if ["TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"].contains(kind) { userTransaction = false }
                }
                if MigrationAnalysis.nonTransactionalReason(statement) == nil && statement.type != "TransactionStmt" && !userTransaction {
                    try await inTransaction("\(file.upFile):\(statement.line)") {
                        try await run(statement, file: file.upFile, transactional: false)
                        try await progress()
                    }
                    continue
                }
                if step.resuming, index == step.resumeAt, let done = try await alreadyDone(statement) {
                    logger.info("a resumed migration's statement had already taken effect; not run again",
                                metadata: ["file": "\(file.upFile)", "line": "\(statement.line)", "found": "\(done)"])
                } else {
                    try await retry.run(connection, what: "\(file.upFile):\(statement.line)", logger: logger, waited: { _ in }) {
                        do {
                            try await run(statement, file: file.upFile, transactional: false)
                        } catch {
                            if LockRetry.isLockTimeout(error) { lockWaits += 1 }
                            throw error
                        }
                    }
                }
                try await progress()
            }
            let ms = (ContinuousClock.now - started).milliseconds
            _ = try await connection.query("UPDATE \(Self.table) SET state = 'applied', applied_at = now(), duration_ms = $2, job_id = $3 WHERE version = $1",
                                           [PostgresParameter(file.version), PostgresParameter(String(ms)), PostgresParameter(jobID)])
        }
        return (ContinuousClock.now - started).milliseconds
    }

    /// One whole file in one transaction, retried from BEGIN when a lock is not granted in
    /// time (the timed-out attempt rolled back first).
    private func inTransaction(_ what: String, _ body: () async throws -> Void) async throws {
        try await retry.run(connection, what: what, logger: logger, waited: { _ in }) {
            _ = try await connection.execute("BEGIN")
            do {
                try await body()
                _ = try await connection.execute("COMMIT")
            } catch {
                _ = try? await connection.execute("ROLLBACK")
                if LockRetry.isLockTimeout(error) { lockWaits += 1 }
                throw error
            }
        }
    }

    /// Runs a file's down script in one transaction (statement by statement when it must)
    /// and removes the version from the tracking table.
    public func revert(_ row: AppliedMigration, file: MigrationFile, analysis: MigrationAnalysis) async throws -> Int64 {
        let started = ContinuousClock.now
        if statementTimeoutMs > 0 { _ = try await connection.execute("SET statement_timeout = \(statementTimeoutMs)") }
        if analysis.transactional {
            try await inTransaction(file.downFile) {
                for statement in analysis.statements { try await run(statement, file: file.downFile, transactional: true) }
                _ = try await connection.query("DELETE FROM \(Self.table) WHERE version = $1", [PostgresParameter(row.version)])
            }
        } else {
            for statement in analysis.statements {
                try await retry.run(connection, what: "\(file.downFile):\(statement.line)", logger: logger, waited: { _ in }) {
                    try await run(statement, file: file.downFile, transactional: false)
                }
            }
            _ = try await connection.query("DELETE FROM \(Self.table) WHERE version = $1", [PostgresParameter(row.version)])
        }
        return (ContinuousClock.now - started).milliseconds
    }

    /// One statement. A `CREATE INDEX CONCURRENTLY` first drops an INVALID index of the
    /// same name an earlier failed build left (so `IF NOT EXISTS` cannot skip it), and a
    /// failed one drops the INVALID index it left itself.
    func run(_ statement: ParsedStatement, file: String, transactional: Bool) async throws {
        let concurrentIndex = statement.type == "IndexStmt" && statement.body["concurrent"]?.bool == true
        var table: String?
        var before: Set<String> = []
        if concurrentIndex, let relation = statement.body["relation"], let name = relation["relname"]?.string {
            let schema = relation["schemaname"]?.string ?? "public"
            table = try PostgresIdentifier.qualified(schema: schema, name: name)
            if let index = statement.body["idxname"]?.string {
                try await dropInvalid([try PostgresIdentifier.qualified(schema: schema, name: index)])
            }
            before = try await invalidIndexes(on: table!)
        }
        do {
            _ = try await connection.execute(statement.text)
        } catch let error as PostgresError {
            var left: Set<String> = []
            if concurrentIndex, let table {
                left = try await invalidIndexes(on: table).subtracting(before)
                try await dropInvalid(left.sorted())
            }
            if LockRetry.isLockTimeout(error) || error.isTransient { throw error }
            let cleanup = left.isEmpty ? "" : " The invalid index the failed build left was dropped."
            let undone = transactional ? " The whole file was rolled back: nothing of it is applied." : " The statements before it stay applied; the next run resumes at this one."
            throw JobError.permanent("\(file):\(statement.line): \(error.message)\(error.detail.map { " (\($0))" } ?? "").\(cleanup)\(undone)")
        }
    }

    /// For a statement that cannot share a transaction with its progress row: whether an
    /// interrupted run already did what it does (what was found), so a resume skips it.
    /// A detach left pending by a kill is finished here (`DETACH … FINALIZE`).
    func alreadyDone(_ statement: ParsedStatement) async throws -> String? {
        let body = statement.body
        func exists(_ sql: String, _ name: String) async throws -> Bool {
            try await connection.query(sql, [PostgresParameter(name)]).scalar == "t"
        }
        switch statement.type {
        case "IndexStmt":
            guard let relation = body["relation"], let index = body["idxname"]?.string else { return nil }
            let name = try PostgresIdentifier.qualified(schema: relation["schemaname"]?.string ?? "public", name: index)
            return try await exists("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", name) ? "index \(name) exists and is valid" : nil
        case "DropStmt" where body["removeType"]?.string == "OBJECT_INDEX":
            let names = (body["objects"]?.array ?? []).compactMap { $0.node("List")?["items"]?.names ?? $0.names }
            for parts in names {
                let name = parts.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: ".")
                if try await exists("SELECT to_regclass($1) IS NOT NULL", name) { return nil }
            }
            return names.isEmpty ? nil : "no index of those names exists"
        case "CreatedbStmt":
            guard let name = body["dbname"]?.string else { return nil }
            return try await exists("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name) ? "database \(name) exists" : nil
        case "DropdbStmt":
            guard let name = body["dbname"]?.string else { return nil }
            return try await exists("SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name) ? "database \(name) is gone" : nil
        case "CreateTableSpaceStmt":
            guard let name = body["tablespacename"]?.string else { return nil }
            return try await exists("SELECT EXISTS (SELECT 1 FROM pg_tablespace WHERE spcname = $1)", name) ? "tablespace \(name) exists" : nil
        case "DropTableSpaceStmt":
            guard let name = body["tablespacename"]?.string else { return nil }
            return try await exists("SELECT NOT EXISTS (SELECT 1 FROM pg_tablespace WHERE spcname = $1)", name) ? "tablespace \(name) is gone" : nil
        case "AlterTableStmt":
            guard let parent = LintContext.qualified(body["relation"]), let cmds = body["cmds"]?.array, cmds.count == 1,
                  let cmd = cmds[0].node("AlterTableCmd"), cmd["subtype"]?.string == "AT_DetachPartition",
                  let child = LintContext.qualified(cmd["def"]?.node("PartitionCmd")?["name"]) else { return nil }
            let quotedParent = try PostgresIdentifier.qualified(schema: String(parent.split(separator: ".", maxSplits: 1)[0]), name: String(parent.split(separator: ".", maxSplits: 1)[1]))
            let quotedChild = try PostgresIdentifier.qualified(schema: String(child.split(separator: ".", maxSplits: 1)[0]), name: String(child.split(separator: ".", maxSplits: 1)[1]))
            let state = try await connection.query("""
                SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)
                """, [PostgresParameter(quotedChild), PostgresParameter(quotedParent)]).scalar
            switch state {
            case nil: return "\(child) is no longer a partition of \(parent)"
            case "t":
                _ = try await connection.execute("ALTER TABLE \(quotedParent) DETACH PARTITION \(quotedChild) FINALIZE")
                return "\(child) was left detach-pending; finished with DETACH … FINALIZE"
            default: return nil
            }
        default:
            return nil
        }
    }

    func invalidIndexes(on table: String) async throws -> Set<String> {
        Set(try await connection.query("""
            SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = to_regclass($1) AND NOT i.indisvalid
            """, [PostgresParameter(table)]).compactMap { $0[0] })
    }

    func dropInvalid(_ names: [String]) async throws {
        for name in names {
            let invalid = try await connection.query("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", [PostgresParameter(name)]).scalar
            guard invalid == "t" else { continue }
            logger.info("dropping an invalid index a failed concurrent build left", metadata: ["index": "\(name)"])
            _ = try await connection.execute("DROP INDEX CONCURRENTLY IF EXISTS \(name)")
        }
    }
}
