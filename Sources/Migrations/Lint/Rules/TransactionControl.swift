import PostgresParser

/// `BEGIN`, `COMMIT`, `ROLLBACK` in a migration file.
struct TransactionControl: MigrationRule {
    let id = LintRule.transactionControl
    let why = "dbq runs each file in its own transaction and records it there; BEGIN, COMMIT or ROLLBACK in the file would end that transaction early"
    let recipe = "remove BEGIN, COMMIT and ROLLBACK from the file"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "TransactionStmt" else { return [] }
        return [(statement.body["kind"]?.string ?? "").replacingOccurrences(of: "TRANS_STMT_", with: "")]
    }
}
