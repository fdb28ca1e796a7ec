import PostgresParser

/// `TRUNCATE` of a table the file did not create.
struct Truncate: MigrationRule {
    let id = LintRule.truncate
    let why = "deletes every row of the table"
    let recipe = "add a WHERE clause, or run it with --snapshot so it can be rolled back"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "TruncateStmt" else { return [] }
        return (statement.body["relations"]?.array ?? []).compactMap { LintContext.qualified($0.node("RangeVar")) }
            .filter { !context.created.contains($0) }.map { "TRUNCATE \($0)" }
    }
}
