import DatabaseJobs
import Foundation
import PostgresClient
import PostgresParser
import Queue

/// `validate-integrity`: read-only counts and sample keys of rows that violate a foreign
/// key (NOT VALID ones included), violate a NOT VALID check, or would violate a pending
/// migration's SET NOT NULL, primary key or unique index. One repeatable-read snapshot.
public struct ValidateIntegrityJob: DatabaseJob {
    public static let kind = "validate-integrity"
    public static var lockClass: DatabaseLockClass? { .read }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }

    public struct Payload: Codable, Sendable {
        public var database: String
        /// The migration files (for the pending ones' constraints); nil: the worker's folder, if any.
        public var files: [MigrationFile]?
        /// Sample keys per finding (default 5).
        public var samples: Int?

        public init(database: String, files: [MigrationFile]? = nil, samples: Int? = nil) {
            self.database = database
            self.files = files
            self.samples = samples
        }
    }

    /// One check that found rows, or passed.
    public struct Finding: Codable, Sendable, Equatable {
        /// `foreign-key`, `check`, `not-null` or `unique`.
        public var kind: String
        public var table: String
        /// The constraint, or `file:line` of the pending migration.
        public var source: String
        public var violations: Int64
        public var samples: [String]
    }

    /// A pending migration's new NOT NULL or uniqueness, found by PostgreSQL's parser.
    public struct PendingConstraint: Sendable, Equatable {
        public var kind: String
        public var schema: String
        public var table: String
        public var columns: [String]
        public var source: String
    }

    public init() {}

    /// What the pending files would add: SET NOT NULL, primary keys and unique constraints
    /// or indexes on tables that exist before them. Pure.
    public static func pendingConstraints(_ files: [MigrationFile]) throws -> [PendingConstraint] {
        var found: [PendingConstraint] = []
        for file in files {
            let statements: [ParsedStatement]
            do { statements = try SQLParser.parse(file.up) } catch { throw JobError.permanent("\(file.upFile): \(error)") }
            var created: Set<String> = []
            for statement in statements {
                let body = statement.body
                let relation = body["relation"]
                let schema = relation?["schemaname"]?.string ?? "public"
                guard let table = relation?["relname"]?.string else { continue }
                let source = "\(file.upFile):\(statement.line)"
                switch statement.type {
                case "CreateStmt": created.insert("\(schema).\(table)")
                case "IndexStmt" where body["unique"]?.bool == true && !created.contains("\(schema).\(table)"):
                    let columns = (body["indexParams"]?.array ?? []).compactMap { $0.node("IndexElem")?["name"]?.string }
                    if !columns.isEmpty { found.append(.init(kind: "unique", schema: schema, table: table, columns: columns, source: source)) }
                case "AlterTableStmt" where !created.contains("\(schema).\(table)"):
                    for command in body["cmds"]?.array ?? [] {
                        guard let cmd = command.node("AlterTableCmd") else { continue }
                        if cmd["subtype"]?.string == "AT_SetNotNull", let column = cmd["name"]?.string {
                            found.append(.init(kind: "not-null", schema: schema, table: table, columns: [column], source: source))
                        }
                        if cmd["subtype"]?.string == "AT_AddConstraint", let def = cmd["def"]?.node("Constraint"),
                           ["CONSTR_UNIQUE", "CONSTR_PRIMARY"].contains(def["contype"]?.string ?? ""), def["indexname"] == nil {
                            let columns = def["keys"]?.names ?? []
                            if !columns.isEmpty { found.append(.init(kind: "unique", schema: schema, table: table, columns: columns, source: source)) }
                            if def["contype"]?.string == "CONSTR_PRIMARY" {
                                for column in columns { found.append(.init(kind: "not-null", schema: schema, table: table, columns: [column], source: source)) }
                            }
                        }
                    }
                default: break
                }
            }
        }
        return found
    }

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let url = try env.database(payload.database)
        let files = payload.files ?? env.configuration.migrations[payload.database].flatMap { try? MigrationFiles.load(directory: $0) }
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await Self.validate(payload, files: files, url: url, context: context)
        }
    }

    static func validate(_ payload: Payload, files: [MigrationFile]?, url: PostgresConnectionString, context: JobContext) async throws -> JSONValue {
        try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq validate-integrity", logger: context.logger) { connection in
            try await validate(payload, files: files, url: url, context: context, connection: connection)
        }
    }

    private static func validate(_ payload: Payload, files: [MigrationFile]?, url: PostgresConnectionString, context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let limit = max(1, min(payload.samples ?? 5, 100))
        _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        // Read only; the scope closes the connection, which ends the transaction.
        var findings: [Finding] = []

        // Foreign keys, valid or not: rows whose key has no referenced row (MATCH SIMPLE: a NULL part skips the row).
        let fks = try await connection.query("""
            SELECT con.conname, con.convalidated, n.nspname, c.relname, rn.nspname, rc.relname,
                   array_to_string(ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), ','),
                   array_to_string(ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), ',')
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE con.contype = 'f' AND con.conparentid = 0 ORDER BY 3, 4, 1
            """)
        for (index, row) in fks.enumerated() {
            guard let name = row[0], let schema = row[2], let table = row[3], let rschema = row[4], let rtable = row[5], let cols = row[6], let rcols = row[7] else { continue }
            let child = try PostgresIdentifier.qualified(schema: schema, name: table)
            let parent = try PostgresIdentifier.qualified(schema: rschema, name: rtable)
            let a = cols.split(separator: ",").map(String.init)
            let b = rcols.split(separator: ",").map(String.init)
            let join = zip(a, b).map { "p.\($1) = c.\($0)" }.joined(separator: " AND ")
            let notNull = a.map { "c.\($0) IS NOT NULL" }.joined(separator: " AND ")
            let key = "(" + a.map { "c.\($0)" }.joined(separator: ", ") + ")::text"
            let result = try await connection.query("""
                SELECT count(*), array_to_string((array_agg(\(key)))[1:\(limit)], E'\\t') FROM \(child) c
                WHERE \(notNull) AND NOT EXISTS (SELECT 1 FROM \(parent) p WHERE \(join))
                """)
            let count = Int64(result.first?[0] ?? "0") ?? 0
            findings.append(Finding(kind: "foreign-key", table: "\(schema).\(table)", source: name + (row[1] == "f" ? " (NOT VALID)" : ""),
                                    violations: count, samples: count == 0 ? [] : (result.first?[1] ?? "").split(separator: "\t").map(String.init)))
            await context.progress(JobProgress(fraction: Double(index + 1) / Double(max(fks.count, 1)) * 0.5, message: "foreign key \(name)"))
        }

        // NOT VALID checks: rows for which the expression is false.
        for row in try await connection.query("""
            SELECT con.conname, n.nspname, c.relname, pg_get_expr(con.conbin, con.conrelid)
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE con.contype = 'c' AND NOT con.convalidated ORDER BY 2, 3, 1
            """) {
            guard let name = row[0], let schema = row[1], let table = row[2], let expression = row[3] else { continue }
            let qualified = try PostgresIdentifier.qualified(schema: schema, name: table)
            let result = try await connection.query("""
                SELECT count(*), array_to_string((array_agg(ctid::text))[1:\(limit)], E'\\t') FROM \(qualified) WHERE (\(expression)) IS FALSE
                """)
            let count = Int64(result.first?[0] ?? "0") ?? 0
            findings.append(Finding(kind: "check", table: "\(schema).\(table)", source: "\(name) (NOT VALID)", violations: count,
                                    samples: count == 0 ? [] : (result.first?[1] ?? "").split(separator: "\t").map { "ctid \($0)" }))
        }

        // What the pending migrations would add.
        var note: String?
        if let files {
            let applied = try await MigrationRunner.applied(connection)
            let pending = (try? MigrationPlanner.pending(files: files, applied: applied, outOfOrder: true)) ?? []
            for constraint in try Self.pendingConstraints(pending.map(\.file)) {
                let qualified = try PostgresIdentifier.qualified(schema: constraint.schema, name: constraint.table)
                guard try await connection.query("SELECT to_regclass($1) IS NOT NULL", [PostgresParameter(qualified)]).scalar == "t" else { continue }
                let columns = try constraint.columns.map { try PostgresIdentifier.quoted($0) }
                let sql: String
                if constraint.kind == "not-null" {
                    sql = "SELECT count(*), array_to_string((array_agg(ctid::text))[1:\(limit)], E'\\t') FROM \(qualified) WHERE \(columns[0]) IS NULL"
                } else {
                    let list = columns.joined(separator: ", ")
                    sql = """
                        SELECT count(*), array_to_string((array_agg(k || ' ×' || n))[1:\(limit)], E'\\t') FROM (
                            SELECT (\(list))::text AS k, count(*) AS n FROM \(qualified) WHERE \(columns.map { "\($0) IS NOT NULL" }.joined(separator: " AND "))
                            GROUP BY \(list) HAVING count(*) > 1) d
                        """
                }
                let result: PostgresRows
                do { result = try await connection.query(sql) } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true {
                    // A column the pending migration itself adds: nothing to check yet.
                    continue
                }
                let count = Int64(result.first?[0] ?? "0") ?? 0
                findings.append(Finding(kind: constraint.kind, table: "\(constraint.schema).\(constraint.table)",
                                        source: "\(constraint.source) (\(constraint.columns.joined(separator: ", ")))", violations: count,
                                        samples: count == 0 ? [] : (result.first?[1] ?? "").split(separator: "\t").map { constraint.kind == "not-null" ? "ctid \($0)" : String($0) }))
            }
        } else {
            note = "no migration files (the job carries none and the worker has no migrations: folder for '\(payload.database)'): pending migrations not checked"
        }
        let violated = findings.filter { $0.violations > 0 }
        return try Result(database: payload.database, checks: findings.count, clean: violated.isEmpty,
                          violations: violated.map { Result.Violation(kind: $0.kind, table: $0.table, source: $0.source, rows: $0.violations, samples: $0.samples) },
                          note: note).json
    }

    /// How many checks ran, and the rows that violate each constraint that does not hold.
    public struct Result: JobResult {
        public struct Violation: Encodable, Sendable {
            public var kind: String
            public var table: String
            public var source: String
            public var rows: Int64
            public var samples: [String]
        }
        public var database: String
        public var checks: Int
        public var clean: Bool
        public var violations: [Violation]
        public var note: String?
    }
}
