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

    /// Fills the row sets in the connection's transaction: each partial table's own
    /// condition, then every row an exported row references, until nothing is added (as
    /// many passes as the longest chain of references, cycles included). Returns the
    /// chosen rows per partial table.
    public func materialize(_ connection: PostgresConnection) async throws -> [String: Int64] {
        guard followsReferences else { return [:] }
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
        var added = true
        while added {
            added = false
            for fk in edges {
                guard let from = catalog.table(fk.table), let to = catalog.table(fk.referenced) else { continue }
                let source = try PostgresIdentifier.qualified(schema: from.schema, name: from.name)
                let target = try PostgresIdentifier.qualified(schema: to.schema, name: to.name)
                let a = try fk.columns.map { "f." + (try PostgresIdentifier.quoted($0)) }.joined(separator: ", ")
                let b = try fk.referencedColumns.map { "t." + (try PostgresIdentifier.quoted($0)) }.joined(separator: ", ")
                let fromRows = rows[fk.table] == .all ? "" : " WHERE f.ctid IN (SELECT id FROM \(rowSet(fk.table)))"
                let result = try await connection.query("""
                    INSERT INTO \(rowSet(fk.referenced)) SELECT t.ctid FROM ONLY \(target) t
                    WHERE (\(b)) IN (SELECT \(a) FROM ONLY \(source) f\(fromRows)) ON CONFLICT DO NOTHING
                    """)
                if (result.affectedRows ?? 0) > 0 { added = true }
            }
        }
        var counts: [String: Int64] = [:]
        for (table, rows) in rows where rows != .all {
            counts[table] = try await connection.query("SELECT count(*) FROM \(rowSet(table))").scalar.flatMap { Int64($0) } ?? 0
        }
        return counts
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
