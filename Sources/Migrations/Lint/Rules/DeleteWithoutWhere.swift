import PostgresParser

/// `DELETE` without `WHERE` on a table the file did not create.
struct DeleteWithoutWhere: MigrationRule {
    let id = LintRule.deleteWithoutWhere
    let why = "deletes every row of the table"
    let recipe = "add a WHERE clause, or run it with --snapshot so it can be rolled back"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "DeleteStmt", statement.body["whereClause"] == nil,
              let table = LintContext.qualified(statement.body["relation"]), !context.isNew(table) else { return [] }
        return ["DELETE FROM \(table)"]
    }
}
