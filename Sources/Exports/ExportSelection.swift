import Anonymization
import DatabaseJobs
import PostgresClient
import PostgresParser

/// Which rows of which tables an export takes: decided from the catalog, the tables and
/// conditions asked for and `followReferences` (pure), then, when rows must be chosen by
/// reference, materialized in the export's snapshot (`materialize`).
import Queue
public struct ExportSelection: Sendable, Equatable {
    public enum Rows: Sendable, Equatable {
        /// Every row.
        case all
        /// The rows matching the user's condition (and, following references, the rows
        /// other exported rows reference).
        case condition(String)
        /// Only rows other exported rows reference (a table reached by following them).
        case referenced
    }

    /// The exported tables with the foreign keys among them.
    public var catalog: TableCatalog
    /// Table (schema.name) → which of its rows.
    public var rows: [String: Rows]
    /// True when rows are chosen by following foreign keys: the export materializes the
    /// chosen rows' ids in temporary tables first.
    public var followsReferences: Bool

    /// The tables asked for (all when none), each checked to exist, with its condition;
    /// with `followReferences`, every table the chosen rows reference, transitively.
    public static func resolve(_ full: TableCatalog, tables names: [String]?, conditions: [String: String]?,
                               followReferences: Bool) throws -> ExportSelection {
        func qualify(_ name: String) -> String { name.contains(".") ? name : "public.\(name)" }
        var chosen = full.tables.map(\.qualifiedName)
        if let names, !names.isEmpty {
            chosen = try names.map { name in
                guard full.table(qualify(name)) != nil else {
                    throw JobError.permanent("no table '\(name)' in the database; tables: \(full.tables.map(\.qualifiedName).joined(separator: ", "))")
                }
                return qualify(name)
            }
        }
        var rows: [String: Rows] = Dictionary(chosen.map { ($0, Rows.all) }, uniquingKeysWith: { a, _ in a })
        for (table, condition) in (conditions ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard rows[qualify(table)] != nil else {
                throw JobError.permanent("a condition names table '\(table)', which is not exported (add it to --tables)")
            }
            try checkCondition(condition, table: qualify(table))
            rows[qualify(table)] = .condition(condition)
        }
        let partial = rows.values.contains { $0 != .all }
        if followReferences && partial {
            // Upward through foreign keys, cycles included: a table reached only by
            // following takes only the referenced rows.
            var frontier = Array(rows.keys)
            while let table = frontier.popLast() {
                for fk in full.foreignKeys where fk.table == table && rows[fk.referenced] == nil {
                    rows[fk.referenced] = .referenced
                    frontier.append(fk.referenced)
                }
            }
        }
        let names = Set(rows.keys)
        let catalog = TableCatalog(tables: full.tables.filter { names.contains($0.qualifiedName) },
                                   foreignKeys: full.foreignKeys.filter { names.contains($0.table) && names.contains($0.referenced) })
        return ExportSelection(catalog: catalog, rows: rows, followsReferences: followReferences && partial)
    }

    /// A `--where` condition must be one expression: `SELECT 1 FROM t WHERE <condition>`
    /// parses as exactly one SELECT with that WHERE, nothing after it (no `; DELETE …`).
    static func checkCondition(_ condition: String, table: String) throws {
        let statements = try? SQLParser.parse("SELECT 1 FROM t WHERE \(condition)")
        guard let statements, statements.count == 1, statements[0].type == "SelectStmt",
              statements[0].body["whereClause"] != nil, statements[0].body["limitCount"] == nil, statements[0].body["sortClause"] == nil,
              statements[0].body["groupClause"] == nil, statements[0].body["havingClause"] == nil, statements[0].body["op"]?.string ?? "SETOP_NONE" == "SETOP_NONE"
        else {
            throw JobError.permanent("the condition for \(table) is not one SQL expression (as after WHERE): \(condition.prefix(200)); nothing was exported")
        }
    }

    /// The foreign keys that add rows to a partial table: from an exported table to a
    /// table not exported whole.
    var edges: [TableCatalog.ForeignKey] {
        catalog.foreignKeys.filter { rows[$0.referenced] != .all }
    }

    /// The temporary table holding the chosen rows' ids of `table`.
    func rowSet(_ table: String) -> String {
        "pg_temp.dbq_rows_\(catalog.tables.firstIndex { $0.qualifiedName == table } ?? 0)"
    }

    /// The `WHERE` clause choosing a table's rows ("" for all). After `materialize`, a
    /// partial table's rows are the ids in its row set.
    public func filter(_ table: String) -> String {
        switch rows[table] ?? .all {
        case .all: return ""
        case .condition(let condition) where !followsReferences: return " WHERE \(condition)"
        case .condition, .referenced: return " WHERE ctid IN (SELECT id FROM \(rowSet(table)))"
        }
    }

    /// One step of following references (see `followingSteps`).
    public enum FollowStep: Sendable, Equatable {
        /// Adds the rows a foreign key's source rows reference, in one statement: every
        /// source row is final by then.
        case edge(TableCatalog.ForeignKey)
        /// A table's references to itself followed to their end in one recursive
        /// statement: each level looks up only the rows the level before added.
        case closure(table: String, keys: [TableCatalog.ForeignKey])
        /// Tables that reference each other: these keys repeated until nothing is added.
        case untilSettled([TableCatalog.ForeignKey])
    }

    /// The order in which references are followed (pure): the tables' strongly connected
    /// components from the referencing end to the referenced, so a table's rows are all
    /// chosen before the keys leaving it are followed. Each key is one statement — a chain
    /// of self-references of any length is one recursive statement, not a pass per level —
    /// except on a cycle through several tables, which repeats until settled.
    public var followingSteps: [FollowStep] {
        let keys = edges
        let names = catalog.tables.map(\.qualifiedName)
        let out = Dictionary(grouping: keys, by: \.table).mapValues { Set($0.map(\.referenced)) }
        func reach(_ start: String) -> Set<String> {
            var seen: Set<String> = [start], stack = [start]
            while let next = stack.popLast() { for to in out[next] ?? [] where seen.insert(to).inserted { stack.append(to) } }
            return seen
        }
        let reachable = Dictionary(uniqueKeysWithValues: names.map { ($0, reach($0)) })
        // Components: tables that reach each other.
        var component: [String: Int] = [:]
        var components: [[String]] = []
        for name in names where component[name] == nil {
            let members = names.filter { reachable[name]!.contains($0) && reachable[$0]!.contains(name) }
            for m in members { component[m] = components.count }
            components.append(members)
        }
        // Referencing components first: a component goes once every component with a key
        // into it has gone.
        var placed: [Int] = []
        var remaining = Array(components.indices)
        while !remaining.isEmpty {
            let ready = remaining.first { c in
                keys.allSatisfy { fk in component[fk.referenced] != c || component[fk.table] == c || placed.contains(component[fk.table]!) }
            } ?? remaining[0]
            placed.append(ready)
            remaining.removeAll { $0 == ready }
        }
        var steps: [FollowStep] = []
        for c in placed {
            let members = Set(components[c])
            steps += keys.filter { members.contains($0.referenced) && !members.contains($0.table) }.map(FollowStep.edge)
            let inside = keys.filter { members.contains($0.referenced) && members.contains($0.table) }
            guard !inside.isEmpty else { continue }
            steps.append(members.count == 1 ? .closure(table: components[c][0], keys: inside) : .untilSettled(inside))
        }
        return steps
    }

    /// Fills the row sets in the connection's transaction: each partial table's own
    /// condition, then every row an exported row references (`followingSteps`). Returns
    /// the chosen rows per partial table and how many statements following took.
    public func materialize(_ connection: PostgresConnection) async throws -> (rows: [String: Int64], statements: Int) {
        guard followsReferences else { return ([:], 0) }
        for table in catalog.tables where rows[table.qualifiedName] != .all {
            _ = try await connection.execute("CREATE TEMP TABLE \(rowSet(table.qualifiedName).dropFirst(8)) (id tid PRIMARY KEY) ON COMMIT DROP")
        }
        // The conditions run read-only (a temporary table still takes rows) and each as one
        // statement of the extended protocol, which refuses a second.
        _ = try await connection.execute("SET TRANSACTION READ ONLY")
        for table in catalog.tables {
            guard case .condition(let condition) = rows[table.qualifiedName] else { continue }
            let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
            _ = try await connection.query("INSERT INTO \(rowSet(table.qualifiedName)) SELECT ctid FROM ONLY \(qualified) WHERE \(condition)")
        }
        var statements = 0
        for step in followingSteps {
            switch step {
            case .edge(let fk):
                _ = try await follow(fk, connection: connection)
                statements += 1
            case .closure(let table, let keys):
                _ = try await connection.query(try closure(table, keys: keys))
                statements += 1
            case .untilSettled(let keys):
                var added = true
                while added {
                    added = false
                    for fk in keys {
                        if try await follow(fk, connection: connection) > 0 { added = true }
                        statements += 1
                    }
                }
            }
        }
        var counts: [String: Int64] = [:]
        for (table, rows) in rows where rows != .all {
            counts[table] = try await connection.query("SELECT count(*) FROM \(rowSet(table))").scalar.flatMap { Int64($0) } ?? 0
        }
        return (counts, statements)
    }

    /// Adds the rows `fk`'s source rows reference; returns how many were new.
    private func follow(_ fk: TableCatalog.ForeignKey, connection: PostgresConnection) async throws -> Int {
        guard let from = catalog.table(fk.table), let to = catalog.table(fk.referenced) else { return 0 }
        let source = try PostgresIdentifier.qualified(schema: from.schema, name: from.name)
        let target = try PostgresIdentifier.qualified(schema: to.schema, name: to.name)
        let a = try fk.columns.map { "f." + (try PostgresIdentifier.quoted($0)) }.joined(separator: ", ")
        let b = try fk.referencedColumns.map { "t." + (try PostgresIdentifier.quoted($0)) }.joined(separator: ", ")
        let fromRows = rows[fk.table] == .all ? "" : " WHERE f.ctid IN (SELECT id FROM \(rowSet(fk.table)))"
        let result = try await connection.query("""
            INSERT INTO \(rowSet(fk.referenced)) SELECT t.ctid FROM ONLY \(target) t
            WHERE (\(b)) IN (SELECT \(a) FROM ONLY \(source) f\(fromRows)) ON CONFLICT DO NOTHING
            """)
        return result.affectedRows ?? 0
    }

    /// One recursive statement taking every row a table's chosen rows reference through
    /// its keys to itself, to the end of every chain (cycles end: UNION keeps a row once).
    func closure(_ table: String, keys: [TableCatalog.ForeignKey]) throws -> String {
        guard let t = catalog.table(table) else { throw JobError.permanent("no table \(table)") }
        let qualified = try PostgresIdentifier.qualified(schema: t.schema, name: t.name)
        let carried = Array(Set(keys.flatMap(\.columns))).sorted()
        let names = try carried.map { try PostgresIdentifier.quoted($0) }
        let list = names.map { "t." + $0 }.joined(separator: ", ")
        let columns = (["dbq_t"] + carried.indices.map { "c\($0)" }).joined(separator: ", ")
        let join = try keys.map { fk in
            "(" + (try fk.referencedColumns.map { "t." + (try PostgresIdentifier.quoted($0)) }.joined(separator: ", ")) + ") = ("
                + fk.columns.map { "r.c\(carried.firstIndex(of: $0)!)" }.joined(separator: ", ") + ")"
        }.joined(separator: " OR ")
        // Each level looks its rows up by the referenced key's index: a lateral subquery
        // the planner may not flatten (OFFSET 0). Planned as a join, the recursive term
        // scanned the whole table per level (160 s for a chain of 5,000 in 200,000 rows;
        // this way 0.2 s).
        return """
            WITH RECURSIVE r(\(columns)) AS (
                SELECT t.ctid, \(list) FROM ONLY \(qualified) t WHERE t.ctid IN (SELECT id FROM \(rowSet(table)))
                UNION
                SELECT n.* FROM r, LATERAL (SELECT t.ctid, \(list) FROM ONLY \(qualified) t WHERE \(join) OFFSET 0) n
            )
            INSERT INTO \(rowSet(table)) SELECT dbq_t FROM r ON CONFLICT DO NOTHING
            """
    }
}

/// The `COPY … TO STDOUT` that reads one table's rows for an export (pure): kept and
/// client-masked columns as they are, `sql` columns as their expression cast to the
/// column's type, `shuffle` columns joined back in a keyed order.
public enum ExportQuery {
    public static func copy(_ table: TableCatalog.Table, columns: [AnonymizationPlan.ColumnPlan], filter: String,
                            key: AnonymizationKey?) throws -> String {
        let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
        func expression(_ column: AnonymizationPlan.ColumnPlan) throws -> String {
            let quoted = try PostgresIdentifier.quoted(column.name)
            guard let sql = column.rule as? SQLExpression else { return quoted }
            return "CAST((\(sql.expression)) AS \(table.column(column.name)?.type ?? "text"))"
        }
        let shuffled = columns.indices.filter { columns[$0].rule is Shuffle }
        guard !shuffled.isEmpty else {
            let list = try columns.map(expression).joined(separator: ", ")
            return "COPY (SELECT \(list) FROM ONLY \(qualified)\(filter)) TO STDOUT"
        }
        guard let key else { throw JobError.permanent("shuffle needs the anonymization key") }
        // A derangement: the rows in an order keyed by the salt (a keyed hash of each row's
        // place), each row takes the value of the row after it in that order, the last the
        // first's. One cycle through every row, so no row keeps its own value (an equal
        // one, when another row had it, may come), and neighbours in a keyed order are any
        // two rows, so values mix however few distinct ones there are. One row has no
        // other to swap with: the query fails (the cast below), and the export stops.
        let base = try columns.enumerated().filter { !shuffled.contains($0.offset) }
            .map { "\(try expression($0.element)) AS c\($0.offset)" } + ["ctid AS dbq_t", "row_number() OVER (ORDER BY ctid) AS dbq_n"]
        var from = "(SELECT \(base.joined(separator: ", ")) FROM ONLY \(qualified)\(filter)) b"
        for i in shuffled {
            let quoted = try PostgresIdentifier.quoted(columns[i].name)
            let salt = Shuffle.salt(key: key, column: "\(table.qualifiedName).\(columns[i].name)")
            let order = "ORDER BY md5('\(salt)' || ctid::text), ctid"
            from += " JOIN (SELECT ctid AS dbq_t, row_number() OVER (\(order)) AS dbq_k, count(*) OVER () AS dbq_m FROM ONLY \(qualified)\(filter)) r\(i)"
                + " ON r\(i).dbq_t = b.dbq_t"
                + " JOIN (SELECT \(quoted) AS c\(i), row_number() OVER (\(order)) AS dbq_k FROM ONLY \(qualified)\(filter)) s\(i)"
                + " ON s\(i).dbq_k = CASE WHEN r\(i).dbq_m < 2 THEN CAST('\(Shuffle.oneRow) ' || r\(i).dbq_m AS bigint) ELSE r\(i).dbq_k % r\(i).dbq_m + 1 END"
        }
        let list = columns.indices.map { shuffled.contains($0) ? "s\($0).c\($0)" : "b.c\($0)" }.joined(separator: ", ")
        return "COPY (SELECT \(list) FROM \(from) ORDER BY b.dbq_n) TO STDOUT"
    }
}
