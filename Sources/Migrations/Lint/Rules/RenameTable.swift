import PostgresParser

/// `ALTER TABLE … RENAME TO` of a table the file did not create.
struct RenameTable: MigrationRule {
    let id = LintRule.renameTable
    let why = "code still using the old name fails at once"
    let recipe = "create the new table name as a view first (or rename and leave a view under the old name), deploy code that uses the new name, then drop the view"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "RenameStmt", statement.body["renameType"]?.string == "OBJECT_TABLE",
              let table = LintContext.qualified(statement.body["relation"]), !context.isNew(table) else { return [] }
        return ["ALTER TABLE \(table) RENAME TO \(statement.body["newname"]?.string ?? "?")"]
    }
}
