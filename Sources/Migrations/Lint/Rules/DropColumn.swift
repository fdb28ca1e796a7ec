import PostgresParser

/// `ALTER TABLE … DROP COLUMN` on a table the file did not create.
struct DropColumn: MigrationRule {
    let id = LintRule.dropColumn
    let why = "deletes the column's data; code still reading or writing it fails"
    let recipe = "stop reading and writing the column in a release first, then drop it in a later migration"

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        command.existing && command.subtype == "AT_DropColumn" ? ["ALTER TABLE \(command.table) DROP COLUMN \(command.column)"] : []
    }
}
