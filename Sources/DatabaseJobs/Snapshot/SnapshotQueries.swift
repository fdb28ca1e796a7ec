import PostgresClient
import Queue

/// What snapshots and rollbacks read from `pg_catalog`, in the connection's transaction.
public enum SnapshotQueries {
    /// The table migrations are tracked in (in `public`).
    public static let migrationsTable = "dbq_migrations"

    public struct TableShape: Sendable, Equatable {
        public var schema: String
        public var name: String
        public var shape: [String]
        /// The columns a COPY carries (not generated ones), in their order.
        public var copyColumns: [String]
        public var qualifiedName: String { "\(schema).\(name)" }
    }

    /// The tables named (`schema.table`, or a name in `public`), or every table of
    /// `schema`; each must exist. In dependency order (referenced tables first).
    public static func resolve(tables: [String]?, schema: String?, database: String, connection: PostgresConnection) async throws -> [TableShape] {
        let all = try await shapes(connection)
        var chosen: [TableShape] = []
        if let tables, !tables.isEmpty {
            var unknown: [String] = []
            for name in tables {
                let qualified = name.contains(".") ? name : "public.\(name)"
                if let table = all[qualified] { if !chosen.contains(table) { chosen.append(table) } } else { unknown.append(name) }
            }
            if !unknown.isEmpty {
                throw JobError.permanent("database '\(database)' has no table \(unknown.map { "'\($0)'" }.joined(separator: ", ")); name tables as schema.table (a bare name is in public)")
            }
        } else if let schema {
            chosen = all.values.filter { $0.schema == schema }.sorted { $0.name < $1.name }
            if chosen.isEmpty { throw JobError.permanent("schema '\(schema)' of database '\(database)' has no tables (or does not exist)") }
        } else {
            throw JobError.permanent("a snapshot needs --tables a,b or --schema NAME")
        }
        let references = try await foreignKeys(connection)
        return dependencyOrder(chosen, references: references)
    }

    /// Referenced tables first; cycles broken by name.
    static func dependencyOrder(_ tables: [TableShape], references: [ForeignKey]) -> [TableShape] {
        var remaining = tables.sorted { $0.qualifiedName < $1.qualifiedName }
        var placed: [TableShape] = []
        let names = Set(tables.map(\.qualifiedName))
        while !remaining.isEmpty {
            let ready = remaining.firstIndex { t in
                references.filter { $0.table == t.qualifiedName && $0.referenced != t.qualifiedName && names.contains($0.referenced) }
                    .allSatisfy { fk in placed.contains { $0.qualifiedName == fk.referenced } }
            } ?? 0
            placed.append(remaining.remove(at: ready))
        }
        return placed
    }

    /// Every ordinary table's shape, by `schema.table`.
    public static func shapes(_ connection: PostgresConnection) async throws -> [String: TableShape] {
        let columns = try await connection.query("""
            SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
            WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
            ORDER BY 1, 2, a.attnum
            """)
        var tables: [String: TableShape] = [:]
        for row in columns {
            guard let schema = row[0], let name = row[1], let column = row[2], let type = row[3] else { continue }
            let key = "\(schema).\(name)"
            if tables[key] == nil { tables[key] = TableShape(schema: schema, name: name, shape: [], copyColumns: []) }
            let generated = row[7] ?? ""
            tables[key]!.shape.append(SchemaShape.column(name: column, type: type, notNull: row[4] == "t", defaultExpression: row[5],
                                                         identity: row[6] ?? "", generated: generated))
            if generated.isEmpty { tables[key]!.copyColumns.append(column) }
        }
        let constraints = try await connection.query("""
            SELECT n.nspname || '.' || c.relname, con.conname, pg_get_constraintdef(con.oid)
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r'
            """)
        for row in constraints {
            guard let table = row[0], let name = row[1], let definition = row[2] else { continue }
            tables[table]?.shape.append(SchemaShape.constraint(name: name, definition: definition))
        }
        for trigger in try await userTriggers(connection) {
            tables[trigger.table]?.shape.append(SchemaShape.trigger(name: trigger.name, definition: trigger.definition, enabled: trigger.enabled))
        }
        return tables
    }

    public struct Trigger: Sendable, Equatable {
        public var table: String
        public var name: String
        public var definition: String
        /// `pg_trigger.tgenabled`: O (origin and local), D (disabled), R (replica), A (always).
        public var enabled: String
    }

    /// The user triggers of ordinary tables (not the ones PostgreSQL makes for constraints).
    public static func userTriggers(_ connection: PostgresConnection) async throws -> [Trigger] {
        try await connection.query("""
            SELECT n.nspname || '.' || c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND c.relkind = 'r'
            ORDER BY 1, 2
            """).compactMap { row in
            guard let table = row[0], let name = row[1], let definition = row[2], let enabled = row[3] else { return nil }
            return Trigger(table: table, name: name, definition: definition, enabled: enabled)
        }
    }

    public struct ForeignKey: Sendable, Equatable {
        public var name: String
        public var table: String
        public var referenced: String
    }

    public static func foreignKeys(_ connection: PostgresConnection) async throws -> [ForeignKey] {
        try await connection.query("""
            SELECT con.conname, n.nspname || '.' || c.relname, rn.nspname || '.' || rc.relname
            FROM pg_constraint con
            JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE con.contype = 'f'
            """).compactMap { row in
            guard let name = row[0], let table = row[1], let referenced = row[2] else { return nil }
            return ForeignKey(name: name, table: table, referenced: referenced)
        }
    }

    /// The sequences the tables' columns own (serial and identity), with their values now.
    public static func sequences(of tables: [String], connection: PostgresConnection) async throws -> [SnapshotManifest.Sequence] {
        let owned = try await connection.query("""
            SELECT s.oid::regclass::text, n.nspname || '.' || t.relname, a.attname
            FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
            JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
            ORDER BY 1
            """)
        var out: [SnapshotManifest.Sequence] = []
        for row in owned {
            guard let sequence = row[0], let table = row[1], let column = row[2], tables.contains(table) else { continue }
            let value = try await connection.query("SELECT last_value, is_called FROM \(sequence)")
            guard let last = value.first?[0].flatMap({ Int64($0) }) else { continue }
            out.append(.init(name: sequence, table: table, column: column, lastValue: last, isCalled: value.first?[1] == "t"))
        }
        return out
    }

    /// The newest applied migration, or nil when the database tracks none.
    public static func migrationVersion(_ connection: PostgresConnection) async throws -> String? {
        guard try await connection.query("SELECT to_regclass('public.\(migrationsTable)') IS NOT NULL").scalar == "t" else { return nil }
        return try await connection.query("SELECT max(version) FROM public.\(migrationsTable)").scalar
    }
}
