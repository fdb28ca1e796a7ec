import PostgresParser

/// `ALTER TABLE … ALTER COLUMN … TYPE` on a table the file did not create.
struct ColumnTypeChange: MigrationRule {
    let id = LintRule.columnTypeChange
    let why = "most type changes rewrite the table and its indexes under an ACCESS EXCLUSIVE lock: no reads or writes meanwhile"
    let recipe = "add a new column, backfill it in batches, switch the code to it, then drop the old one"

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        command.existing && command.subtype == "AT_AlterColumnType" ? ["ALTER TABLE \(command.table) ALTER COLUMN \(command.column) TYPE …"] : []
    }
}
