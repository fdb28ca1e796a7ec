import PostgresParser

/// `DROP DATABASE` in a migration.
struct DropDatabase: MigrationRule {
    let id = LintRule.dropDatabase
    let why = "deletes a whole database"
    let recipe = "drop databases by hand, not in a migration"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        statement.type == "DropdbStmt" ? ["DROP DATABASE \(statement.body["dbname"]?.string ?? "?")"] : []
    }
}
