import PostgresParser

/// A file run statement by statement (not in one transaction) that never sets
/// `lock_timeout`: judged over the whole file by the linter, not per statement.
struct MissingLockTimeout: MigrationRule {
    let id = LintRule.missingLockTimeout
    let why = "run outside dbq, a statement waiting for a lock queues every later query on the table behind it (dbq itself always sets one)"
    let recipe = "start the file with SET lock_timeout = '2s'"
    static let subject = "a file run statement by statement without SET lock_timeout"
}
