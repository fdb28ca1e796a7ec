import PostgresParser

/// `CREATE INDEX` without `CONCURRENTLY` on a table that exists.
struct CreateIndexWithoutConcurrently: MigrationRule {
    let id = LintRule.createIndexWithoutConcurrently
    let why = "builds the index under a SHARE lock: every write to the table waits until it is done"
    let recipe = "CREATE INDEX CONCURRENTLY (dbq runs the file statement by statement and drops an invalid index a failed build leaves); for a key, build the unique index CONCURRENTLY, then ADD CONSTRAINT … USING INDEX"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "IndexStmt", statement.body["concurrent"]?.bool != true,
              let table = LintContext.qualified(statement.body["relation"]), !context.isNew(table) else { return [] }
        return [Self.subject(statement.body)]
    }

    /// `CREATE UNIQUE INDEX CONCURRENTLY name ON schema.table`.
    static func subject(_ body: ParseNode) -> String {
        let table = LintContext.qualified(body["relation"])
        let name = body["idxname"]?.string
        return "CREATE \(body["unique"]?.bool == true ? "UNIQUE " : "")INDEX\(body["concurrent"]?.bool == true ? " CONCURRENTLY" : "") \(name ?? "") ON \(table ?? "?")"
    }
}

/// `ALTER TABLE … ADD COLUMN … UNIQUE` (or `PRIMARY KEY`): an index built under lock.
struct UniqueColumn: MigrationRule {
    let id = LintRule.createIndexWithoutConcurrently
    let why = CreateIndexWithoutConcurrently().why
    let recipe = CreateIndexWithoutConcurrently().recipe

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_AddColumn", let def = command.node["def"]?.node("ColumnDef") else { return [] }
        let constraints = ColumnConstraints(def)
        guard constraints.all.contains(where: { ["CONSTR_PRIMARY", "CONSTR_UNIQUE"].contains($0["contype"]?.string ?? "") }) else { return [] }
        return ["ALTER TABLE \(command.table) ADD COLUMN \(constraints.name) … UNIQUE"]
    }
}

/// `ALTER TABLE … ADD CONSTRAINT … PRIMARY KEY | UNIQUE | EXCLUDE` without `USING INDEX`.
struct KeyConstraintWithoutIndex: MigrationRule {
    let id = LintRule.createIndexWithoutConcurrently
    let why = CreateIndexWithoutConcurrently().why
    let recipe = CreateIndexWithoutConcurrently().recipe

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_AddConstraint", let def = command.node["def"]?.node("Constraint"),
              ["CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION"].contains(def["contype"]?.string ?? ""),
              def["indexname"]?.string == nil else { return [] }
        let name = def["conname"]?.string.map { " \($0)" } ?? ""
        return ["ALTER TABLE \(command.table) ADD CONSTRAINT\(name) \(def["contype"]?.string == "CONSTR_PRIMARY" ? "PRIMARY KEY" : "UNIQUE") …"]
    }
}

/// A column definition's name and constraints, as the ADD COLUMN rules read them.
struct ColumnConstraints {
    var name: String
    var all: [ParseNode]

    init(_ def: ParseNode) {
        name = def["colname"]?.string ?? "?"
        all = (def["constraints"]?.array ?? []).compactMap { $0.node("Constraint") }
    }

    var defaults: [ParseNode] { all.filter { $0["contype"]?.string == "CONSTR_DEFAULT" } }
}
