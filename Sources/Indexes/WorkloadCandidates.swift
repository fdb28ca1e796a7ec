import DatabaseJobs
import PostgresParser

/// The columns a statement filters, joins or sorts on, read from PostgreSQL's parse tree,
/// and the indexes worth trying for them. Pure.
public enum WorkloadCandidates {
    public struct Candidate: Sendable, Hashable, Codable {
        /// `schema.table`.
        public var table: String
        public var columns: [String]
        public init(table: String, columns: [String]) {
            self.table = table
            self.columns = columns
        }
    }

    /// What one statement uses, per table: columns compared for equality, by range, joined, sorted.
    public struct Usage: Sendable, Equatable {
        public var equality: [String] = []
        public var range: [String] = []
        public var order: [String] = []
    }

    /// Candidates for one statement's text: single columns, and equality columns followed by
    /// one range or sort column; none that an existing index already leads with.
    public static func candidates(_ sql: String, catalog: IndexCatalog) -> [Candidate] {
        guard let statement = try? SQLParser.parse(sql).first else { return [] }
        var out: [Candidate] = []
        for (table, usage) in uses(statement, catalog: catalog).sorted(by: { $0.key < $1.key }) {
            var sets: [[String]] = []
            for column in usage.equality + usage.range + usage.order where !sets.contains([column]) { sets.append([column]) }
            let equality = Array(usage.equality.prefix(3))
            if equality.count > 1 { sets.append(equality) }
            for tail in (usage.range + usage.order).prefix(2) where !equality.isEmpty && !equality.contains(tail) { sets.append(equality + [tail]) }
            // A column that alone is unique already finds at most one row: no index with it helps more.
            let unique = Set(catalog.indexes(on: table).filter { $0.unique && $0.valid && $0.predicate == nil && $0.keys.count == 1 }.compactMap { IndexKey.column($0.keys[0]) })
            for columns in sets where !catalog.covered(table, leading: columns)
                && !(columns.count > 1 && columns.contains { unique.contains($0) }) {
                let candidate = Candidate(table: table, columns: columns)
                if !out.contains(candidate) { out.append(candidate) }
            }
        }
        return out
    }

    /// What a parameter `$n` is compared with: a column, by an operator (`=`, `<`, `>`, `<=`,
    /// `>=`, as if the column stood on the left), alone (`col > $1`) or inside an expression
    /// (`col > now() - $1::interval`).
    public struct ParameterRole: Sendable, Equatable {
        public var table: String
        public var column: String
        public var op: String
        public var direct: Bool
        public init(table: String, column: String, op: String, direct: Bool) {
            self.table = table
            self.column = column
            self.op = op
            self.direct = direct
        }
    }

    /// Table (`schema.table`) → what the statement does with its columns.
    public static func uses(_ statement: ParsedStatement, catalog: IndexCatalog) -> [String: Usage] {
        analyze(statement, catalog: catalog).usage
    }

    /// What the statement does with its columns, and what each parameter it compares with a
    /// column stands for (the rest are not in the map).
    public static func analyze(_ statement: ParsedStatement, catalog: IndexCatalog) -> (usage: [String: Usage], parameters: [Int: ParameterRole]) {
        let body = statement.body
        var aliases: [String: String] = [:]   // alias or name → schema.table
        var quals: [ParseNode] = []
        var sorts: [ParseNode] = []
        func addRange(_ node: ParseNode) {
            if let rv = node.node("RangeVar") {
                guard let name = rv["relname"]?.string else { return }
                let qualified = resolveTable(schema: rv["schemaname"]?.string, name: name, catalog: catalog)
                guard let qualified else { return }
                aliases[rv["alias"]?["aliasname"]?.string ?? name] = qualified
                aliases[name] = aliases[name] ?? qualified
            } else if let join = node.node("JoinExpr") {
                if let l = join["larg"] { addRange(l) }
                if let r = join["rarg"] { addRange(r) }
                if let q = join["quals"] { quals.append(q) }
            }
        }
        switch statement.type {
        case "SelectStmt":
            for from in body["fromClause"]?.array ?? [] { addRange(from) }
            if let w = body["whereClause"] { quals.append(w) }
            sorts = (body["sortClause"]?.array ?? []).compactMap { $0.node("SortBy")?["node"] }
        case "UpdateStmt", "DeleteStmt":
            if let rv = body["relation"] { addRange(.object(["RangeVar": rv])) }
            for from in (body["fromClause"]?.array ?? []) + (body["usingClause"]?.array ?? []) { addRange(from) }
            if let w = body["whereClause"] { quals.append(w) }
        default:
            return ([:], [:])
        }
        var usage: [String: Usage] = [:]
        var parameters: [Int: ParameterRole] = [:]
        func params(_ node: ParseNode?) -> [Int] {
            guard let node else { return [] }
            if let n = node.node("ParamRef")?["number"]?.int { return [n] }
            return ParseNode.object(["x": node]).all("ParamRef").compactMap { $0["number"]?.int }
        }
        func isParam(_ node: ParseNode?) -> Bool {
            guard let node else { return false }
            if node.node("ParamRef") != nil { return true }
            // $1::type
            if let cast = node.node("TypeCast"), cast["arg"]?.node("ParamRef") != nil { return true }
            return false
        }
        func role(_ c: (String, String)?, _ op: String, _ other: ParseNode?) {
            guard let (table, name) = c else { return }
            let found = params(other)
            guard found.count == 1 else { return }
            parameters[found[0]] = ParameterRole(table: table, column: name, op: op, direct: isParam(other))
        }
        let flipped = ["<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "="]
        func column(_ node: ParseNode?) -> (String, String)? {
            guard let ref = node?.node("ColumnRef") else { return nil }
            let fields = ref["fields"]?.names ?? []
            if fields.count == 2, let table = aliases[fields[0]] { return (table, fields[1]) }
            if fields.count == 1 {
                let owners = Set(aliases.values).filter { catalog.table($0)?.columns.contains(fields[0]) == true }
                if owners.count == 1 { return (owners.first!, fields[0]) }
            }
            return nil
        }
        func note(_ c: (String, String)?, _ kind: WritableKeyPath<Usage, [String]>) {
            guard let (table, name) = c else { return }
            if !usage[table, default: Usage()][keyPath: kind].contains(name) { usage[table, default: Usage()][keyPath: kind].append(name) }
        }
        func visit(_ node: ParseNode) {
            if let bool = node.node("BoolExpr") {
                // Only AND: a column under OR does not narrow the rows alone.
                if bool["boolop"]?.string == "AND_EXPR" { (bool["args"]?.array ?? []).forEach(visit) }
                return
            }
            if let expr = node.node("A_Expr") {
                let op = expr["name"]?.names.last ?? ""
                let kind = expr["kind"]?.string ?? ""
                let left = column(expr["lexpr"])
                let right = column(expr["rexpr"])
                if kind == "AEXPR_OP" && op == "=" {
                    note(left, \.equality); note(right, \.equality)
                } else if kind == "AEXPR_IN" {
                    note(left, \.equality)
                } else if kind == "AEXPR_OP" && ["<", ">", "<=", ">="].contains(op) || kind.hasPrefix("AEXPR_BETWEEN") {
                    note(left, \.range); note(right, \.range)
                }
                if kind == "AEXPR_OP", let flip = flipped[op] {
                    if left != nil && right == nil { role(left, op, expr["rexpr"]) }
                    if right != nil && left == nil { role(right, flip, expr["lexpr"]) }
                } else if kind == "AEXPR_BETWEEN", left != nil, let bounds = expr["rexpr"]?.node("List")?["items"]?.array ?? expr["rexpr"]?.array, bounds.count == 2 {
                    role(left, ">=", bounds[0]); role(left, "<=", bounds[1])
                }
                return
            }
            if let sub = node.node("SubLink"), let inner = sub["subselect"] {
                // IN (SELECT …) / EXISTS: the correlated columns count where they are compared.
                if let test = sub["testexpr"] { note(column(test), \.equality) }
                _ = inner
            }
        }
        quals.forEach(visit)
        for sort in sorts { note(column(sort), \.order) }
        return (usage, parameters)
    }

    /// `schema.name` of a table the statement names: its schema, else `public`, else the only
    /// schema that has a table of that name.
    static func resolveTable(schema: String?, name: String, catalog: IndexCatalog) -> String? {
        if let schema { return catalog.table("\(schema).\(name)") != nil ? "\(schema).\(name)" : nil }
        if catalog.table("public.\(name)") != nil { return "public.\(name)" }
        let matches = catalog.tables.filter { $0.name == name }
        return matches.count == 1 ? matches[0].qualifiedName : nil
    }
}
