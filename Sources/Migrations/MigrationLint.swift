import DatabaseJobs
import PostgresParser

/// The rules dbq checks a migration against, each with why it is dangerous and the safe
/// way to get the same result. A dangerous finding refuses the migration unless the
/// statement carries `-- dbq:allow RULE` or the run says `--allow RULE`.
public enum LintRule: String, Sendable, CaseIterable, Codable {
    case dropTable = "drop-table"
    case dropColumn = "drop-column"
    case dropDatabase = "drop-database"
    case truncate
    case deleteWithoutWhere = "delete-without-where"
    case updateWithoutWhere = "update-without-where"
    case columnTypeChange = "column-type-change"
    case notNullColumnWithoutDefault = "add-not-null-column-without-default"
    case setNotNull = "set-not-null"
    case constraintWithoutNotValid = "constraint-without-not-valid"
    case createIndexWithoutConcurrently = "create-index-without-concurrently"
    case dropIndexWithoutConcurrently = "drop-index-without-concurrently"
    case concurrentlyInTransaction = "concurrently-in-transaction"
    case transactionControl = "transaction-control"
    case renameTable = "rename-table"
    case renameColumn = "rename-column"
    case volatileDefault = "volatile-default"
    case missingLockTimeout = "missing-lock-timeout"

    public enum Severity: String, Sendable, Codable { case danger, warning }

    public var severity: Severity { self == .missingLockTimeout ? .warning : .danger }

    public var why: String {
        switch self {
        case .dropTable: "deletes the table and every row in it; code still reading it fails"
        case .dropColumn: "deletes the column's data; code still reading or writing it fails"
        case .dropDatabase: "deletes a whole database"
        case .truncate: "deletes every row of the table"
        case .deleteWithoutWhere: "deletes every row of the table"
        case .updateWithoutWhere: "changes every row of the table (and locks them all)"
        case .columnTypeChange: "most type changes rewrite the table and its indexes under an ACCESS EXCLUSIVE lock: no reads or writes meanwhile"
        case .notNullColumnWithoutDefault: "fails on a table that has rows (existing rows would be NULL)"
        case .setNotNull: "scans the whole table under an ACCESS EXCLUSIVE lock"
        case .constraintWithoutNotValid: "checks every existing row while holding a lock that blocks writes"
        case .createIndexWithoutConcurrently: "builds the index under a SHARE lock: every write to the table waits until it is done"
        case .dropIndexWithoutConcurrently: "takes an ACCESS EXCLUSIVE lock on the index's table"
        case .concurrentlyInTransaction: "CONCURRENTLY cannot run inside a transaction block: the statement fails"
        case .transactionControl: "dbq runs each file in its own transaction and records it there; BEGIN, COMMIT or ROLLBACK in the file would end that transaction early"
        case .renameTable: "code still using the old name fails at once"
        case .renameColumn: "code still using the old name fails at once"
        case .volatileDefault: "a volatile default is computed per row: the whole table is rewritten under an ACCESS EXCLUSIVE lock"
        case .missingLockTimeout: "run outside dbq, a statement waiting for a lock queues every later query on the table behind it (dbq itself always sets one)"
        }
    }

    public var recipe: String {
        switch self {
        case .dropTable: "stop using the table in a release first, snapshot it (--snapshot), then drop it in a later migration"
        case .dropColumn: "stop reading and writing the column in a release first, then drop it in a later migration"
        case .dropDatabase: "drop databases by hand, not in a migration"
        case .truncate, .deleteWithoutWhere: "add a WHERE clause, or run it with --snapshot so it can be rolled back"
        case .updateWithoutWhere: "add a WHERE clause, or backfill in batches (UPDATE … WHERE id BETWEEN …)"
        case .columnTypeChange: "add a new column, backfill it in batches, switch the code to it, then drop the old one"
        case .notNullColumnWithoutDefault: "add the column with a constant DEFAULT (instant since PostgreSQL 11), or nullable, backfill, then SET NOT NULL through a validated check"
        case .setNotNull: "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; then SET NOT NULL (PostgreSQL 12+ uses the check and skips the scan)"
        case .constraintWithoutNotValid: "ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT … in a later statement (it takes a lock that lets writes through)"
        case .createIndexWithoutConcurrently: "CREATE INDEX CONCURRENTLY (dbq runs the file statement by statement and drops an invalid index a failed build leaves); for a key, build the unique index CONCURRENTLY, then ADD CONSTRAINT … USING INDEX"
        case .dropIndexWithoutConcurrently: "DROP INDEX CONCURRENTLY"
        case .concurrentlyInTransaction: "remove BEGIN/COMMIT: dbq runs a file with CONCURRENTLY statement by statement by itself"
        case .transactionControl: "remove BEGIN, COMMIT and ROLLBACK from the file"
        case .renameTable: "create the new table name as a view first (or rename and leave a view under the old name), deploy code that uses the new name, then drop the view"
        case .renameColumn: "add the new column, write both, backfill, switch reads, then drop the old column"
        case .volatileDefault: "add the column without a default (or with a constant), backfill it in batches, then SET DEFAULT"
        case .missingLockTimeout: "start the file with SET lock_timeout = '2s'"
        }
    }
}

/// One finding: where, which rule, and whether the file or the run allows it.
public struct LintFinding: Sendable, Equatable, Codable {
    public var file: String
    public var line: Int
    public var rule: LintRule
    public var severity: LintRule.Severity
    /// What the statement does, in a few words (`ALTER TABLE public.users DROP COLUMN email`).
    public var subject: String
    public var allowed: Bool

    public var description: String {
        "\(file):\(line): \(rule.rawValue) (\(severity.rawValue)\(allowed ? ", allowed" : "")): \(subject): \(rule.why). Safe: \(rule.recipe)"
    }
}

/// What dbq knows about one migration file from PostgreSQL's parser.
public struct MigrationAnalysis: Sendable, Equatable {
    public var statements: [ParsedStatement]
    /// False when a statement cannot run in a transaction block; `reasons` says which.
    public var transactional: Bool
    public var nonTransactionalReasons: [String]
    /// Tables the file changes that it did not create (`schema.table`): what `--snapshot` takes.
    public var touchedTables: [String]
    public var findings: [LintFinding]

    /// Findings that refuse the migration: dangerous and not allowed.
    public var blocking: [LintFinding] { findings.filter { $0.severity == .danger && !$0.allowed } }

    static let volatileFunctions: Set<String> = [
        "random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
        "nextval", "txid_current", "random_normal", "setseed",
    ]

    /// Parses and lints `sql` (the file `file`); `allow` adds rules allowed for the run.
    public static func analyze(_ sql: String, file: String, allow: Set<String> = []) throws(SQLSyntaxError) -> MigrationAnalysis {
        let statements = try SQLParser.parse(sql)
        var findings: [LintFinding] = []
        var reasons: [String] = []
        var created: Set<String> = []
        var createdIndexes: Set<String> = []
        var validated: Set<String> = []
        var touched: [String] = []
        var openTransaction = false
        var setsLockTimeout = false

        func qualified(_ relation: ParseNode?) -> String? {
            guard let relation, let name = relation["relname"]?.string else { return nil }
            return "\(relation["schemaname"]?.string ?? "public").\(name)"
        }
        func touch(_ table: String?) {
            if let table, !created.contains(table), !touched.contains(table) { touched.append(table) }
        }

        for statement in statements {
            let body = statement.body
            let allowedHere = allow.union(allowances(in: statement.text))
            func flag(_ rule: LintRule, _ subject: String) {
                findings.append(LintFinding(file: file, line: statement.line, rule: rule, severity: rule.severity, subject: subject,
                                            allowed: allowedHere.contains(rule.rawValue)))
            }
            switch statement.type {
            case "CreateStmt", "CreateTableAsStmt":
                if let table = qualified(body["relation"] ?? body["into"]?["IntoClause"]?["rel"]) { created.insert(table) }
            case "TransactionStmt":
                let kind = body["kind"]?.string ?? ""
                if ["TRANS_STMT_BEGIN", "TRANS_STMT_START"].contains(kind) { openTransaction = true }
                if ["TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_COMMIT_PREPARED", "TRANS_STMT_ROLLBACK_PREPARED"].contains(kind) { openTransaction = false }
                flag(.transactionControl, kind.replacingOccurrences(of: "TRANS_STMT_", with: ""))
            case "VariableSetStmt":
                if body["name"]?.string == "lock_timeout" { setsLockTimeout = true }
            case "IndexStmt":
                let table = qualified(body["relation"])
                let name = body["idxname"]?.string
                if let name { createdIndexes.insert(name) }
                let subject = "CREATE \(body["unique"]?.bool == true ? "UNIQUE " : "")INDEX\(body["concurrent"]?.bool == true ? " CONCURRENTLY" : "") \(name ?? "") ON \(table ?? "?")"
                if body["concurrent"]?.bool == true {
                    reasons.append("line \(statement.line): CREATE INDEX CONCURRENTLY")
                    if openTransaction { flag(.concurrentlyInTransaction, subject) }
                } else if let table, !created.contains(table) {
                    flag(.createIndexWithoutConcurrently, subject)
                }
            case "DropStmt":
                let type = body["removeType"]?.string ?? ""
                let objects = body["objects"]?.array.map { $0.node("List")?["items"]?.names ?? [] } ?? []
                let names = objects.map { $0.count == 1 ? "public.\($0[0])" : $0.joined(separator: ".") }
                if type == "OBJECT_TABLE" {
                    for name in names where !created.contains(name) { flag(.dropTable, "DROP TABLE \(name)"); touch(name) }
                } else if type == "OBJECT_INDEX" {
                    if body["concurrent"]?.bool == true {
                        reasons.append("line \(statement.line): DROP INDEX CONCURRENTLY")
                        if openTransaction { flag(.concurrentlyInTransaction, "DROP INDEX CONCURRENTLY") }
                    } else {
                        for (object, name) in zip(objects, names) where !createdIndexes.contains(object.last ?? "") {
                            flag(.dropIndexWithoutConcurrently, "DROP INDEX \(name)")
                        }
                    }
                }
            case "DropdbStmt":
                reasons.append("line \(statement.line): DROP DATABASE")
                flag(.dropDatabase, "DROP DATABASE \(body["dbname"]?.string ?? "?")")
            case "CreatedbStmt":
                reasons.append("line \(statement.line): CREATE DATABASE")
            case "TruncateStmt":
                for relation in body["relations"]?.array ?? [] {
                    let table = qualified(relation.node("RangeVar"))
                    if let table, !created.contains(table) { flag(.truncate, "TRUNCATE \(table)") }
                    touch(table)
                }
            case "DeleteStmt":
                let table = qualified(body["relation"])
                if body["whereClause"] == nil, let table, !created.contains(table) { flag(.deleteWithoutWhere, "DELETE FROM \(table)") }
                touch(table)
            case "UpdateStmt":
                let table = qualified(body["relation"])
                if body["whereClause"] == nil, let table, !created.contains(table) { flag(.updateWithoutWhere, "UPDATE \(table)") }
                touch(table)
            case "InsertStmt":
                touch(qualified(body["relation"]))
            case "RenameStmt":
                let table = qualified(body["relation"])
                switch body["renameType"]?.string {
                case "OBJECT_TABLE"?:
                    if let table, !created.contains(table) { flag(.renameTable, "ALTER TABLE \(table) RENAME TO \(body["newname"]?.string ?? "?")") }
                    touch(table)
                case "OBJECT_COLUMN"?:
                    if let table, !created.contains(table) {
                        flag(.renameColumn, "ALTER TABLE \(table) RENAME COLUMN \(body["subname"]?.string ?? "?") TO \(body["newname"]?.string ?? "?")")
                    }
                    touch(table)
                default: break
                }
            case "ReindexStmt":
                if (body["params"]?.array ?? []).contains(where: { $0.node("DefElem")?["defname"]?.string == "concurrently" }) {
                    reasons.append("line \(statement.line): REINDEX CONCURRENTLY")
                    if openTransaction { flag(.concurrentlyInTransaction, "REINDEX CONCURRENTLY") }
                }
            case "VacuumStmt":
                if body["is_vacuumcmd"]?.bool == true { reasons.append("line \(statement.line): VACUUM") }
            case "AlterSystemStmt":
                reasons.append("line \(statement.line): ALTER SYSTEM")
            case "CreateTableSpaceStmt", "DropTableSpaceStmt":
                reasons.append("line \(statement.line): \(statement.type == "CreateTableSpaceStmt" ? "CREATE" : "DROP") TABLESPACE")
            case "AlterTableStmt":
                guard let table = qualified(body["relation"]) else { break }
                let existing = !created.contains(table)
                if existing { touch(table) }
                for command in body["cmds"]?.array ?? [] {
                    guard let cmd = command.node("AlterTableCmd") else { continue }
                    let column = cmd["name"]?.string ?? "?"
                    switch cmd["subtype"]?.string ?? "" {
                    case "AT_DropColumn" where existing:
                        flag(.dropColumn, "ALTER TABLE \(table) DROP COLUMN \(column)")
                    case "AT_AlterColumnType" where existing:
                        flag(.columnTypeChange, "ALTER TABLE \(table) ALTER COLUMN \(column) TYPE …")
                    case "AT_SetNotNull" where existing && !validated.contains(table):
                        flag(.setNotNull, "ALTER TABLE \(table) ALTER COLUMN \(column) SET NOT NULL")
                    case "AT_ValidateConstraint":
                        validated.insert(table)
                    case "AT_AddColumn" where existing:
                        guard let def = cmd["def"]?.node("ColumnDef") else { break }
                        let name = def["colname"]?.string ?? "?"
                        let constraints = (def["constraints"]?.array ?? []).compactMap { $0.node("Constraint") }
                        let defaults = constraints.filter { $0["contype"]?.string == "CONSTR_DEFAULT" }
                        let notNull = constraints.contains { $0["contype"]?.string == "CONSTR_NOTNULL" }
                        let identity = constraints.contains { ["CONSTR_IDENTITY", "CONSTR_GENERATED"].contains($0["contype"]?.string ?? "") }
                        if notNull && defaults.isEmpty && !identity {
                            flag(.notNullColumnWithoutDefault, "ALTER TABLE \(table) ADD COLUMN \(name) … NOT NULL")
                        }
                        let functions = defaults.flatMap { $0["raw_expr"]?.all("FuncCall") ?? [] }.compactMap { $0["funcname"]?.names.last }
                        if let volatile = functions.first(where: volatileFunctions.contains) {
                            flag(.volatileDefault, "ALTER TABLE \(table) ADD COLUMN \(name) … DEFAULT \(volatile)()")
                        }
                        if constraints.contains(where: { ["CONSTR_PRIMARY", "CONSTR_UNIQUE"].contains($0["contype"]?.string ?? "") }) {
                            flag(.createIndexWithoutConcurrently, "ALTER TABLE \(table) ADD COLUMN \(name) … UNIQUE")
                        }
                    case "AT_AddConstraint" where existing:
                        guard let def = cmd["def"]?.node("Constraint") else { break }
                        let name = def["conname"]?.string.map { " \($0)" } ?? ""
                        switch def["contype"]?.string ?? "" {
                        case "CONSTR_FOREIGN" where def["skip_validation"]?.bool != true:
                            flag(.constraintWithoutNotValid, "ALTER TABLE \(table) ADD CONSTRAINT\(name) FOREIGN KEY …")
                        case "CONSTR_CHECK" where def["skip_validation"]?.bool != true:
                            flag(.constraintWithoutNotValid, "ALTER TABLE \(table) ADD CONSTRAINT\(name) CHECK …")
                        case "CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION" where def["indexname"]?.string == nil:
                            flag(.createIndexWithoutConcurrently, "ALTER TABLE \(table) ADD CONSTRAINT\(name) \(def["contype"]?.string == "CONSTR_PRIMARY" ? "PRIMARY KEY" : "UNIQUE") …")
                        default: break
                        }
                    default: break
                    }
                }
            default: break
            }
        }
        if !reasons.isEmpty && !setsLockTimeout, let first = statements.first {
            findings.append(LintFinding(file: file, line: first.line, rule: .missingLockTimeout, severity: .warning,
                                        subject: "a file run statement by statement without SET lock_timeout",
                                        allowed: allow.contains(LintRule.missingLockTimeout.rawValue)))
        }
        return MigrationAnalysis(statements: statements, transactional: reasons.isEmpty, nonTransactionalReasons: reasons,
                                 touchedTables: touched, findings: findings)
    }

    /// Rules a statement's comments allow: `-- dbq:allow rule-a, rule-b`.
    static func allowances(in text: String) -> Set<String> {
        var rules: Set<String> = []
        for line in text.split(separator: "\n") {
            guard let dash = line.range(of: "--"), let marker = line[dash.upperBound...].range(of: "dbq:allow") else { continue }
            for word in line[marker.upperBound...].split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
                rules.insert(String(word))
            }
        }
        return rules
    }
}
