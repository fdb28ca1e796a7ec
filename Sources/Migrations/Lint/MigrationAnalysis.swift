import DatabaseJobs
import PostgresParser

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

    /// Parses and lints `sql` (the file `file`); `allow` adds rules allowed for the run;
    /// `volatileFunctions`, when a database was asked (`volatileFunctions(_:)`), what it
    /// declares volatile.
    /// Walks the statements in order, asks every rule (`MigrationRules.all`) of each
    /// statement and of each `ALTER TABLE` command, and keeps what the file did so far.
    public static func analyze(_ sql: String, file: String, allow: Set<String> = [],
                               volatileFunctions: Set<String>? = nil) throws(SQLSyntaxError) -> MigrationAnalysis {
        let statements = try SQLParser.parse(sql)
        var findings: [LintFinding] = []
        var reasons: [String] = []
        var touched: [String] = []
        var context = LintContext(volatileFunctions: volatileFunctions)
        var setsLockTimeout = false

        func touch(_ table: String?) {
            if let table, !context.created.contains(table), !touched.contains(table) { touched.append(table) }
        }

        for (index, statement) in statements.enumerated() {
            let body = statement.body
            let allowedHere = allow.union(allowances(of: index, in: statements))
            func flag(_ rule: LintRule, _ subjects: [String]) {
                for subject in subjects {
                    findings.append(LintFinding(file: file, line: statement.line, rule: rule, severity: rule.severity, subject: subject,
                                                allowed: allowedHere.contains(rule.rawValue)))
                }
            }
            if statement.type == "AlterTableStmt", let table = LintContext.qualified(body["relation"]) {
                let existing = !context.created.contains(table)
                if existing { touch(table) }
                for command in body["cmds"]?.array ?? [] {
                    guard let cmd = command.node("AlterTableCmd") else { continue }
                    let alter = AlterCommand(table: table, existing: existing, subtype: cmd["subtype"]?.string ?? "", column: cmd["name"]?.string ?? "?", node: cmd)
                    for rule in MigrationRules.all { flag(rule.id, rule.check(alter, context)) }
                    context.noteNotNullCheck(alter)
                }
            } else {
                for rule in MigrationRules.all { flag(rule.id, rule.check(statement, context)) }
            }
            if let reason = nonTransactionalReason(statement) { reasons.append("line \(statement.line): \(reason)") }
            // What the statement did, for the statements after it.
            switch statement.type {
            case "CreateStmt", "CreateTableAsStmt":
                // CREATE TABLE AS names its table in `into.rel` (an IntoClause, written without its type).
                if let table = LintContext.qualified(body["relation"] ?? body["into"]?["rel"] ?? body["into"]?["IntoClause"]?["rel"]) {
                    context.created.insert(table)
                }
            case "TransactionStmt":
                let kind = body["kind"]?.string ?? ""
                if ["TRANS_STMT_BEGIN", "TRANS_STMT_START"].contains(kind) { context.openTransaction = true }
                if ["TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_COMMIT_PREPARED", "TRANS_STMT_ROLLBACK_PREPARED"].contains(kind) {
                    context.openTransaction = false
                }
            case "VariableSetStmt":
                if body["name"]?.string == "lock_timeout" { setsLockTimeout = true }
            case "IndexStmt":
                if let name = body["idxname"]?.string { context.createdIndexes.insert(name) }
            case "DropStmt" where body["removeType"]?.string == "OBJECT_TABLE":
                for name in DropTargets(body).names { touch(name) }
            case "TruncateStmt":
                for relation in body["relations"]?.array ?? [] { touch(LintContext.qualified(relation.node("RangeVar"))) }
            case "DeleteStmt", "UpdateStmt", "InsertStmt":
                touch(LintContext.qualified(body["relation"]))
            case "RenameStmt" where ["OBJECT_TABLE", "OBJECT_COLUMN"].contains(body["renameType"]?.string ?? ""):
                touch(LintContext.qualified(body["relation"]))
            default: break
            }
        }
        if !reasons.isEmpty && !setsLockTimeout, let first = statements.first {
            findings.append(LintFinding(file: file, line: first.line, rule: .missingLockTimeout, severity: .warning,
                                        subject: MissingLockTimeout.subject, allowed: allow.contains(LintRule.missingLockTimeout.rawValue)))
        }
        return MigrationAnalysis(statements: statements, transactional: reasons.isEmpty, nonTransactionalReasons: reasons,
                                 touchedTables: touched, findings: findings)
    }

    /// Why a statement cannot run inside a transaction block; nil when it can.
    static func nonTransactionalReason(_ statement: ParsedStatement) -> String? {
        let body = statement.body
        switch statement.type {
        case "IndexStmt" where body["concurrent"]?.bool == true: return "CREATE INDEX CONCURRENTLY"
        case "DropStmt" where body["removeType"]?.string == "OBJECT_INDEX" && body["concurrent"]?.bool == true: return "DROP INDEX CONCURRENTLY"
        case "DropdbStmt": return "DROP DATABASE"
        case "CreatedbStmt": return "CREATE DATABASE"
        case "ReindexStmt" where ConcurrentlyInTransaction.isConcurrentReindex(body): return "REINDEX CONCURRENTLY"
        case "VacuumStmt" where body["is_vacuumcmd"]?.bool == true: return "VACUUM"
        case "AlterSystemStmt": return "ALTER SYSTEM"
        case "CreateTableSpaceStmt": return "CREATE TABLESPACE"
        case "DropTableSpaceStmt": return "DROP TABLESPACE"
        case "AlterTableStmt" where (body["cmds"]?.array ?? []).contains(where: {
            $0.node("AlterTableCmd")?["subtype"]?.string == "AT_DetachPartition" && $0.node("AlterTableCmd")?["def"]?.node("PartitionCmd")?["concurrent"]?.bool == true
        }): return "DETACH PARTITION CONCURRENTLY"
        default: return nil
        }
    }

    /// Rules a statement's comments allow (`-- dbq:allow rule-a, rule-b`): on the lines
    /// before it, on its own lines, and after its end on its last line. A statement's text
    /// starts right after the previous statement's semicolon, so what stands before the
    /// first line break there is the previous statement's line, and its comment the
    /// previous statement's.
    static func allowances(of index: Int, in statements: [ParsedStatement]) -> Set<String> {
        let text = statements[index].text
        var rules = allowances(in: index == 0 ? text : ownLines(text))
        if index + 1 < statements.count { rules.formUnion(allowances(in: firstLine(statements[index + 1].text))) }
        return rules
    }

    static func firstLine(_ text: String) -> String { text.firstIndex(of: "\n").map { String(text[..<$0]) } ?? text }

    static func ownLines(_ text: String) -> String {
        guard let newline = text.firstIndex(of: "\n") else {
            // The statement starts on the previous one's line: a comment there is the previous one's.
            return text.range(of: "--").map { String(text[..<$0.lowerBound]) } ?? text
        }
        return String(text[text.index(after: newline)...])
    }

    /// Rules the `-- dbq:allow` comments of `text` allow.
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

import PostgresClient

extension MigrationAnalysis {
    /// What the database declares volatile, by name and by `schema.name`: user functions
    /// and a newer server's built-ins (`uuidv7()`) included.
    public static func volatileFunctions(_ connection: PostgresConnection) async throws -> Set<String> {
        let rows = try await connection.query("""
            SELECT DISTINCT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.provolatile = 'v'
            """)
        var names: Set<String> = []
        for row in rows { if let schema = row[0], let name = row[1] { names.insert(name); names.insert("\(schema).\(name)") } }
        return names
    }
}
