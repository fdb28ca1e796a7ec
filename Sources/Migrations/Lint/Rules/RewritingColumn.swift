import PostgresParser

/// `ADD COLUMN` of a serial type, `GENERATED … AS IDENTITY` or a stored generated column
/// on a table that has rows: every row gets its own value, so the table is rewritten.
struct RewritingColumn: MigrationRule {
    let id = LintRule.addColumnRewritesTable
    let why = "every existing row gets a value computed for it (a sequence's next value, an identity, a stored expression): the whole table is rewritten under an ACCESS EXCLUSIVE lock"
    let recipe = "add the column nullable without a default, backfill it in batches, then attach the sequence or default (an identity or a stored generated column needs a new table filled in batches)"

    static let serialTypes: Set<String> = ["serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"]

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_AddColumn", let def = command.node["def"]?.node("ColumnDef") else { return [] }
        let constraints = ColumnConstraints(def)
        let type = def["typeName"]?["names"]?.names.last ?? ""
        let how: String?
        if Self.serialTypes.contains(type) {
            how = type
        } else if constraints.all.contains(where: { $0["contype"]?.string == "CONSTR_IDENTITY" }) {
            how = "GENERATED … AS IDENTITY"
        } else if constraints.all.contains(where: { $0["contype"]?.string == "CONSTR_GENERATED" }) {
            how = "GENERATED … STORED"
        } else {
            how = nil
        }
        return how.map { ["ALTER TABLE \(command.table) ADD COLUMN \(constraints.name) \($0)"] } ?? []
    }
}
