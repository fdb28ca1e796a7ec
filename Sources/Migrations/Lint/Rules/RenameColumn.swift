import PostgresParser

/// `ALTER TABLE … RENAME COLUMN` on a table the file did not create.
struct RenameColumn: MigrationRule {
    let id = LintRule.renameColumn
    let why = "code still using the old name fails at once"
    let recipe = "add the new column, write both, backfill, switch reads, then drop the old column"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        let body = statement.body
        guard statement.type == "RenameStmt", body["renameType"]?.string == "OBJECT_COLUMN",
              let table = LintContext.qualified(body["relation"]), !context.isNew(table) else { return [] }
        return ["ALTER TABLE \(table) RENAME COLUMN \(body["subname"]?.string ?? "?") TO \(body["newname"]?.string ?? "?")"]
    }
}
