import PostgresParser

/// `UPDATE` without `WHERE` on a table the file did not create.
struct UpdateWithoutWhere: MigrationRule {
    let id = LintRule.updateWithoutWhere
    let why = "changes every row of the table (and locks them all)"
    let recipe = "add a WHERE clause, or backfill in batches (UPDATE … WHERE id BETWEEN …)"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "UpdateStmt", statement.body["whereClause"] == nil,
              let table = LintContext.qualified(statement.body["relation"]), !context.isNew(table) else { return [] }
        return ["UPDATE \(table)"]
    }
}
