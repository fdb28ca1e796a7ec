import PostgresParser

/// `DROP INDEX` without `CONCURRENTLY` of an index the file did not create.
struct DropIndexWithoutConcurrently: MigrationRule {
    let id = LintRule.dropIndexWithoutConcurrently
    let why = "takes an ACCESS EXCLUSIVE lock on the index's table"
    let recipe = "DROP INDEX CONCURRENTLY"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard statement.type == "DropStmt", statement.body["removeType"]?.string == "OBJECT_INDEX",
              statement.body["concurrent"]?.bool != true else { return [] }
        let targets = DropTargets(statement.body)
        return zip(targets.objects, targets.names).filter { !context.createdIndexes.contains($0.0.last ?? "") }.map { "DROP INDEX \($0.1)" }
    }
}
