import PostgresParser

/// `ADD CONSTRAINT … FOREIGN KEY | CHECK` without `NOT VALID` on a table that exists.
struct ConstraintWithoutNotValid: MigrationRule {
    let id = LintRule.constraintWithoutNotValid
    let why = "checks every existing row while holding a lock that blocks writes"
    let recipe = "ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT … in a later statement (it takes a lock that lets writes through)"

    func check(_ command: AlterCommand, _ context: LintContext) -> [String] {
        guard command.existing, command.subtype == "AT_AddConstraint", let def = command.node["def"]?.node("Constraint"),
              def["skip_validation"]?.bool != true else { return [] }
        let name = def["conname"]?.string.map { " \($0)" } ?? ""
        switch def["contype"]?.string ?? "" {
        case "CONSTR_FOREIGN": return ["ALTER TABLE \(command.table) ADD CONSTRAINT\(name) FOREIGN KEY …"]
        case "CONSTR_CHECK": return ["ALTER TABLE \(command.table) ADD CONSTRAINT\(name) CHECK …"]
        default: return []
        }
    }
}
