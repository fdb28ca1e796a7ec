import DatabaseJobs
import PostgresParser

/// What a `create-index` job builds, from options or from a statement (checked by
/// PostgreSQL's parser). Pure.
public struct IndexBuildSpec: Sendable, Equatable, Codable {
    public var schema: String
    public var table: String
    public var name: String
    public var unique: Bool
    public var method: String
    /// Columns (quoted as needed) or expressions (in parentheses).
    public var keys: [String]
    public var include: [String]
    public var predicate: String?
    /// The statement as given with `--sql` (then the fields above are what the parser read).
    public var sql: String?

    public var qualifiedTable: String { "\(schema).\(table)" }
    public var qualifiedName: String { "\(IndexCatalog.quotedIfNeeded(schema)).\(IndexCatalog.quotedIfNeeded(name))" }
}

public enum IndexBuildPlan {
    public struct Problem: Error, Sendable, CustomStringConvertible, Equatable {
        public var description: String
    }

    public static let methods: Set<String> = ["btree", "hash", "gist", "gin", "brin", "spgist"]

    /// `<table>_<columns>_idx`, cut to PostgreSQL's 63 bytes.
    public static func defaultName(table: String, columns: [String]) -> String {
        let words = columns.map { $0.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" } }.filter { !$0.isEmpty }
        var name = ([table] + words + ["idx"]).joined(separator: "_")
        while name.utf8.count > 63 { name.removeLast() }
        return name
    }

    /// From options: `table` is `schema.table` or a name in `public`.
    public static func spec(table: String, columns: [String], method: String?, include: [String], predicate: String?, unique: Bool,
                            name: String?) throws(Problem) -> IndexBuildSpec {
        guard !columns.isEmpty else { throw Problem(description: "create-index needs --columns a,b (or --sql 'CREATE INDEX CONCURRENTLY …')") }
        let method = (method ?? "btree").lowercased()
        guard methods.contains(method) else { throw Problem(description: "--using \(method) is not an index method; use \(methods.sorted().joined(separator: ", "))") }
        let (schema, bare) = table.contains(".") ? (String(table.split(separator: ".", maxSplits: 1)[0]), String(table.split(separator: ".", maxSplits: 1)[1])) : ("public", table)
        let spec = IndexBuildSpec(schema: schema, table: bare, name: name ?? defaultName(table: bare, columns: columns), unique: unique, method: method,
                                  keys: columns.map(key), include: include.map(IndexCatalog.quotedIfNeeded), predicate: predicate, sql: nil)
        // Checked by the parser: one CREATE INDEX, nothing smuggled after it.
        let statements: [ParsedStatement]
        do { statements = try SQLParser.parse(createSQL(spec)) } catch { throw Problem(description: "the index does not parse: \(error) (in \(createSQL(spec)))") }
        guard statements.count == 1, statements[0].type == "IndexStmt" else {
            throw Problem(description: "the options do not make one CREATE INDEX statement: \(createSQL(spec))")
        }
        return spec
    }

    /// From `--sql`: one `CREATE INDEX CONCURRENTLY name ON table …`.
    public static func spec(sql: String) throws(Problem) -> IndexBuildSpec {
        let statements: [ParsedStatement]
        do { statements = try SQLParser.parse(sql) } catch { throw Problem(description: "--sql does not parse: \(error)") }
        guard statements.count == 1, statements[0].type == "IndexStmt", let relation = statements[0].body["relation"], let table = relation["relname"]?.string else {
            throw Problem(description: "--sql must be one CREATE INDEX statement")
        }
        let body = statements[0].body
        guard body["concurrent"]?.bool == true else {
            throw Problem(description: "--sql must say CREATE INDEX CONCURRENTLY (dbq builds indexes only concurrently, so writers are never blocked)")
        }
        guard let name = body["idxname"]?.string else {
            throw Problem(description: "--sql must name the index (CREATE INDEX CONCURRENTLY name ON …): a retry finds its leftover by name")
        }
        let keys = (body["indexParams"]?.array ?? []).compactMap { $0.node("IndexElem")?["name"]?.string }.map(IndexCatalog.quotedIfNeeded)
        return IndexBuildSpec(schema: relation["schemaname"]?.string ?? "public", table: table, name: name, unique: body["unique"]?.bool == true,
                              method: body["accessMethod"]?.string ?? "btree", keys: keys, include: [], predicate: nil,
                              sql: statements[0].text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A key: a column (quoted as needed) or an expression (in parentheses).
    static func key(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let isName = trimmed.first.map { $0.isLetter || $0 == "_" } == true && trimmed.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
        if isName { return IndexCatalog.quotedIfNeeded(trimmed) }
        return trimmed.hasPrefix("(") ? trimmed : "(\(trimmed))"
    }

    /// The statement: concurrently on a table, or `ON ONLY` a partitioned parent (not concurrently: that only records the index).
    public static func createSQL(_ spec: IndexBuildSpec, on table: (schema: String, name: String)? = nil, name: String? = nil,
                                 concurrently: Bool = true, only: Bool = false) -> String {
        if let sql = spec.sql, table == nil, name == nil { return sql }
        let target = table ?? (spec.schema, spec.table)
        var text = "CREATE \(spec.unique ? "UNIQUE " : "")INDEX \(concurrently ? "CONCURRENTLY " : "")"
        text += "\(IndexCatalog.quotedIfNeeded(name ?? spec.name)) ON \(only ? "ONLY " : "")"
        text += "\(IndexCatalog.quotedIfNeeded(target.schema)).\(IndexCatalog.quotedIfNeeded(target.name)) USING \(spec.method) (\(spec.keys.joined(separator: ", ")))"
        if !spec.include.isEmpty { text += " INCLUDE (\(spec.include.joined(separator: ", ")))" }
        if let predicate = spec.predicate { text += " WHERE \(predicate)" }
        return text
    }

    /// The name of a partition's index: `<index>_<partition>`, within 63 bytes.
    public static func partitionIndexName(_ index: String, partition: String) -> String {
        var name = "\(index)_\(partition)"
        while name.utf8.count > 63 { name.removeLast() }
        return name
    }
}
