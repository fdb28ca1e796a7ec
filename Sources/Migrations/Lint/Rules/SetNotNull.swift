import PostgresParser

/// `ALTER COLUMN … SET NOT NULL` on an existing table, unless a valid `CHECK (col IS NOT
/// NULL)` on that very column comes before it (validated, or added valid).
struct SetNotNull: MigrationRule {
    let id = LintRule.setNotNull
    let why = "scans the whole table under an ACCESS EXCLUSIVE lock"
    let recipe = "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; then SET NOT NULL (PostgreSQL 12+ uses the check and skips the scan)"

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_SetNotNull", !context.provenNotNull.contains("\(command.table).\(command.column)") else { return [] }
        return ["ALTER TABLE \(command.table) ALTER COLUMN \(command.column) SET NOT NULL"]
    }
}
