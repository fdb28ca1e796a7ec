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
    case addColumnRewritesTable = "add-column-rewrites-table"
    case missingLockTimeout = "missing-lock-timeout"

    public enum Severity: String, Sendable, Codable { case danger, warning }

    public var severity: Severity { self == .missingLockTimeout ? .warning : .danger }

    /// Why the rule matters, and the safe recipe: each rule's own file says them.
    public var why: String { MigrationRules.rule(self).why }
    public var recipe: String { MigrationRules.rule(self).recipe }
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
