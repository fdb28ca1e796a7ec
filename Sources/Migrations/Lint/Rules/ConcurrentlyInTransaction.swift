import PostgresParser

/// `CREATE INDEX CONCURRENTLY` (or DROP INDEX, REINDEX) after a `BEGIN` of the file's own.
struct ConcurrentlyInTransaction: MigrationRule {
    let id = LintRule.concurrentlyInTransaction
    let why = "CONCURRENTLY cannot run inside a transaction block: the statement fails"
    let recipe = "remove BEGIN/COMMIT: dbq runs a file with CONCURRENTLY statement by statement by itself"

    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] {
        guard context.openTransaction else { return [] }
        let body = statement.body
        switch statement.type {
        case "IndexStmt" where body["concurrent"]?.bool == true:
            return [CreateIndexWithoutConcurrently.subject(body)]
        case "DropStmt" where body["removeType"]?.string == "OBJECT_INDEX" && body["concurrent"]?.bool == true:
            return ["DROP INDEX CONCURRENTLY"]
        case "ReindexStmt" where Self.isConcurrentReindex(body):
            return ["REINDEX CONCURRENTLY"]
        default:
            return []
        }
    }

    static func isConcurrentReindex(_ body: ParseNode) -> Bool {
        (body["params"]?.array ?? []).contains { $0.node("DefElem")?["defname"]?.string == "concurrently" }
    }
}
