import PostgresParser

/// `ADD COLUMN … DEFAULT f()` with a volatile `f` on a table that has rows.
struct VolatileDefault: MigrationRule {
    let id = LintRule.volatileDefault
    let why = "a volatile default is computed per row: the whole table is rewritten under an ACCESS EXCLUSIVE lock"
    let recipe = "add the column without a default (or with a constant), backfill it in batches, then SET DEFAULT"

    /// Volatile functions a file commonly calls, for a lint without a database; with one,
    /// the database's own `pg_proc` answers too (`LintContext.volatileFunctions`).
    static let volatileFunctions: Set<String> = [
        "random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
        "uuidv4", "uuidv7", "nextval", "txid_current", "random_normal", "setseed",
    ]

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_AddColumn", let def = command.node["def"]?.node("ColumnDef") else { return [] }
        let constraints = ColumnConstraints(def)
        let functions = constraints.defaults.flatMap { $0["raw_expr"]?.all("FuncCall") ?? [] }.compactMap { $0["funcname"]?.names }
        guard let volatile = functions.first(where: { Self.volatileFunctions.contains($0.last ?? "") || context.isVolatile($0) })?.last else { return [] }
        return ["ALTER TABLE \(command.table) ADD COLUMN \(constraints.name) … DEFAULT \(volatile)()"]
    }
}
