import PostgresParser

/// `DROP TABLE` of a table the file did not create.
struct DropTable: MigrationRule {
    let id = LintRule.dropTable
    let why = "deletes the table and every row in it; code still reading it fails"
    let recipe = "stop using the table in a release first, snapshot it (--snapshot), then drop it in a later migration"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "DropStmt", statement.body["removeType"]?.string == "OBJECT_TABLE" else { return [] }
        return DropTargets(statement.body).names.filter { !context.created.contains($0) }.map { "DROP TABLE \($0)" }
    }
}

/// The objects a `DROP` names, as written (`[schema, name]`) and qualified (`schema.name`).
struct DropTargets {
    var objects: [[String]]
    var names: [String]

    init(_ body: ParseNode) {
        objects = body["objects"]?.array.map { $0.node("List")?["items"]?.names ?? [] } ?? []
        names = objects.map { $0.count == 1 ? "public.\($0[0])" : $0.joined(separator: ".") }
    }
}
