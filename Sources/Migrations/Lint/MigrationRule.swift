import PostgresParser

/// One lint rule, squawk-style: its name, why it matters, the safe recipe, and a pure
/// check of a statement (or of one `ALTER TABLE` command) against what the file did
/// before it. The linter walks the file and asks every rule; a rule knows nothing of
/// the others.
protocol MigrationRule: Sendable {
    var id: LintRule { get }
    var why: String { get }
    var recipe: String { get }
    /// What each finding in `statement` is about (`DROP TABLE public.users`); empty: none.
    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String]
    /// The same for one command of an `ALTER TABLE`.
    func check(_ command: AlterCommand, _ context: LintContext) -> [String]
}

extension MigrationRule {
    func check(_ statement: ParsedStatement, _ context: LintContext) -> [String] { [] }
    func check(_ command: AlterCommand, _ context: LintContext) -> [String] { [] }
}

/// What the file did before the statement a rule looks at.
struct LintContext: Sendable {
    /// Tables the file created (`schema.table`): changing them endangers nobody.
    var created: Set<String> = []
    /// Indexes the file created, by name.
    var createdIndexes: Set<String> = []
    /// `CHECK (col IS NOT NULL)` constraints added `NOT VALID` so far, by `table|name` →
    /// the column.
    var notNullChecks: [String: String] = [:]
    /// `table.column` pairs a valid (or validated) `CHECK (col IS NOT NULL)` covers: their
    /// `SET NOT NULL` uses it and does not scan (PostgreSQL 12+).
    var provenNotNull: Set<String> = []
    /// Inside a `BEGIN` the file wrote itself.
    var openTransaction = false
    /// Functions the database declares volatile (`pg_proc.provolatile = 'v'`), by name and
    /// by `schema.name`; nil when no database was asked. A name counts as volatile if any
    /// of its overloads is.
    var volatileFunctions: Set<String>? = nil

    /// Whether a call to `names` (the parser's `funcname`: `[name]` or `[schema, name]`) is
    /// volatile by the database's catalog.
    func isVolatile(_ names: [String]) -> Bool {
        guard let volatileFunctions, let name = names.last else { return false }
        return volatileFunctions.contains(names.count > 1 ? names.suffix(2).joined(separator: ".") : name)
    }

    /// `schema.table` of a `RangeVar` (a bare name is in `public`).
    static func qualified(_ relation: ParseNode?) -> String? {
        guard let relation, let name = relation["relname"]?.string else { return nil }
        return "\(relation["schemaname"]?.string ?? "public").\(name)"
    }

    func isNew(_ table: String?) -> Bool { table.map(created.contains) ?? false }

    /// Keeps what an `ALTER TABLE` command proves of a column's NULLs: a `CHECK (col IS NOT
    /// NULL)` added valid proves it at once; one added `NOT VALID`, once it is validated.
    mutating func noteNotNullCheck(_ command: AlterCommand) {
        switch command.subtype {
        case "AT_AddConstraint":
            guard let constraint = command.node["def"]?.node("Constraint"), constraint["contype"]?.string == "CONSTR_CHECK",
                  let test = constraint["raw_expr"]?.node("NullTest"), test["nulltesttype"]?.string == "IS_NOT_NULL",
                  let column = test["arg"]?.node("ColumnRef")?["fields"]?.array.last?.node("String")?["sval"]?.string else { return }
            if constraint["skip_validation"]?.bool == true {
                if let name = constraint["conname"]?.string { notNullChecks["\(command.table)|\(name)"] = column }
            } else {
                provenNotNull.insert("\(command.table).\(column)")
            }
        case "AT_ValidateConstraint":
            if let column = notNullChecks["\(command.table)|\(command.column)"] { provenNotNull.insert("\(command.table).\(column)") }
        default:
            break
        }
    }
}

/// One command of an `ALTER TABLE` on `table`.
struct AlterCommand: Sendable {
    var table: String
    /// The table existed before this file (it did not create it).
    var existing: Bool
    /// `AT_DropColumn`, `AT_AddColumn`, …
    var subtype: String
    /// The column it names, or `?`.
    var column: String
    var node: ParseNode
}

/// Every rule, in the order the linter asks them (which orders a statement's findings).
enum MigrationRules {
    static let all: [any MigrationRule] = [
        TransactionControl(), ConcurrentlyInTransaction(), CreateIndexWithoutConcurrently(), DropTable(), DropIndexWithoutConcurrently(),
        DropDatabase(), Truncate(), DeleteWithoutWhere(), UpdateWithoutWhere(), RenameTable(), RenameColumn(),
        DropColumn(), ColumnTypeChange(), SetNotNull(), NotNullColumnWithoutDefault(), VolatileDefault(), RewritingColumn(), UniqueColumn(),
        ConstraintWithoutNotValid(), KeyConstraintWithoutIndex(), MissingLockTimeout(),
    ]

    static func rule(_ id: LintRule) -> any MigrationRule {
        all.first { $0.id == id }!
    }
}
