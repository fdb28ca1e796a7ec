import PostgresParser

/// `ADD COLUMN … NOT NULL` with no default (nor identity) on a table that has rows.
struct NotNullColumnWithoutDefault: MigrationRule {
    let id = LintRule.notNullColumnWithoutDefault
    let why = "fails on a table that has rows (existing rows would be NULL)"
    let recipe = "add the column with a constant DEFAULT (instant since PostgreSQL 11), or nullable, backfill, then SET NOT NULL through a validated check"

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_AddColumn", let def = command.node["def"]?.node("ColumnDef") else { return [] }
        let constraints = ColumnConstraints(def)
        let notNull = constraints.all.contains { $0["contype"]?.string == "CONSTR_NOTNULL" }
        let identity = constraints.all.contains { ["CONSTR_IDENTITY", "CONSTR_GENERATED"].contains($0["contype"]?.string ?? "") }
        guard notNull && constraints.defaults.isEmpty && !identity else { return [] }
        return ["ALTER TABLE \(command.table) ADD COLUMN \(constraints.name) … NOT NULL"]
    }
}
