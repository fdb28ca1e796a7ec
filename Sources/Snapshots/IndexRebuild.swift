import DatabaseJobs
import PostgresClient

/// A rollback of a large table loads it faster without its indexes and builds them after
/// (a sort instead of one btree insert per row, and no per-row foreign-key checks), as
/// pg_restore does. This decides, from the catalog, what a rollback drops before loading
/// and creates again after, all inside its one transaction. Pure.
public enum IndexRebuild {
    public struct Constraint: Sendable, Equatable {
        public var schema: String
        public var table: String
        public var name: String
        /// `p`, `u`, `x` or `f`.
        public var type: String
        public var definition: String
        /// For a foreign key: the referenced table, `schema.table`.
        public var referenced: String?
        /// What its definition does not carry, set again after it is added.
        public var extras: Extras
        public var qualifiedTable: String { "\(schema).\(table)" }
        public init(schema: String, table: String, name: String, type: String, definition: String, referenced: String?, extras: Extras = Extras()) {
            self.schema = schema
            self.table = table
            self.name = name
            self.type = type
            self.definition = definition
            self.referenced = referenced
            self.extras = extras
        }
    }

    /// What `pg_get_indexdef` and `pg_get_constraintdef` leave out of an index: its
    /// tablespace, whether it is the table's replica identity or its CLUSTER index, and
    /// the comments on it (and on its constraint).
    public struct Extras: Sendable, Equatable {
        public var tablespace: String?
        public var replicaIdentity: Bool
        public var clustered: Bool
        public var indexComment: String?
        public var constraintComment: String?
        /// The index's own name (a constraint's index is named after it, but need not be).
        public var indexName: String?
        public init(tablespace: String? = nil, replicaIdentity: Bool = false, clustered: Bool = false, indexComment: String? = nil,
                    constraintComment: String? = nil, indexName: String? = nil) {
            self.tablespace = tablespace
            self.replicaIdentity = replicaIdentity
            self.clustered = clustered
            self.indexComment = indexComment
            self.constraintComment = constraintComment
            self.indexName = indexName
        }
    }

    public struct Index: Sendable, Equatable {
        public var schema: String
        public var table: String
        public var name: String
        /// `pg_get_indexdef`: the whole CREATE INDEX statement.
        public var definition: String
        public var extras: Extras
        public var qualifiedTable: String { "\(schema).\(table)" }
        public init(schema: String, table: String, name: String, definition: String, extras: Extras = Extras()) {
            self.schema = schema
            self.table = table
            self.name = name
            self.definition = definition
            self.extras = extras
        }
    }

    public struct Plan: Sendable, Equatable {
        /// Run after the tables are locked and emptied, before loading.
        public var drop: [String]
        /// Run after loading, before the commit.
        public var create: [String]
        /// The indexes and constraints `create` makes again.
        public var objects: Int = 0
    }

    /// The tables of a snapshot worth rebuilding: at least `threshold` rows in it.
    public static func rebuilt(_ tables: [SnapshotManifest.Table], threshold: Int64) -> Set<String> {
        Set(tables.filter { $0.rows >= threshold }.map(\.qualifiedName))
    }

    /// Drops the indexes and the primary-key, unique and exclusion constraints of the
    /// `rebuilt` tables, and every foreign key between tables of the snapshot (`inside`)
    /// that starts or ends at one of them; creates them again after in the reverse order.
    ///
    /// Also every foreign key that is not `DEFERRABLE` and points at a table loaded later
    /// in `order` (a cycle of keys: `SET CONSTRAINTS ALL DEFERRED` cannot defer it, so the
    /// first COPY would fail): dropped and added again, which checks every row.
    public static func plan(rebuilt: Set<String>, inside: Set<String>, order: [String] = [], constraints: [Constraint], indexes: [Index]) throws -> Plan {
        var drop: [String] = []
        var create: [String] = []
        let keys = constraints.filter { $0.type != "f" && rebuilt.contains($0.qualifiedTable) }.sorted { ($0.qualifiedTable, $0.name) < ($1.qualifiedTable, $1.name) }
        let position = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        func loadsLater(_ c: Constraint) -> Bool {
            guard let from = position[c.qualifiedTable], let to = c.referenced.flatMap({ position[$0] }) else { return false }
            return to > from && !c.definition.contains("DEFERRABLE")
        }
        let foreign = constraints.filter { c in
            c.type == "f" && inside.contains(c.qualifiedTable) && (c.referenced.map(inside.contains) ?? false)
                && (rebuilt.contains(c.qualifiedTable) || (c.referenced.map(rebuilt.contains) ?? false) || loadsLater(c))
        }.sorted { ($0.qualifiedTable, $0.name) < ($1.qualifiedTable, $1.name) }
        let plain = indexes.filter { rebuilt.contains($0.qualifiedTable) }.sorted { ($0.qualifiedTable, $0.name) < ($1.qualifiedTable, $1.name) }
        for c in foreign {
            drop.append("ALTER TABLE \(try PostgresIdentifier.qualified(schema: c.schema, name: c.table)) DROP CONSTRAINT \(try PostgresIdentifier.quoted(c.name))")
        }
        for c in keys {
            drop.append("ALTER TABLE \(try PostgresIdentifier.qualified(schema: c.schema, name: c.table)) DROP CONSTRAINT \(try PostgresIdentifier.quoted(c.name))")
        }
        for i in plain { drop.append("DROP INDEX \(try PostgresIdentifier.qualified(schema: i.schema, name: i.name))") }
        for i in plain {
            try create += restored(i.definition, schema: i.schema, table: i.table, index: i.name, constraint: nil, i.extras)
        }
        for c in keys + foreign {
            let add = "ALTER TABLE \(try PostgresIdentifier.qualified(schema: c.schema, name: c.table)) ADD CONSTRAINT \(try PostgresIdentifier.quoted(c.name)) \(c.definition)"
            try create += restored(add, schema: c.schema, table: c.table, index: c.type == "f" ? nil : c.extras.indexName ?? c.name, constraint: c.name, c.extras)
        }
        return Plan(drop: drop, create: create, objects: plain.count + keys.count + foreign.count)
    }

    /// `statement` (which makes an index, or a constraint and its index) in the index's
    /// tablespace, followed by what its definition leaves out.
    static func restored(_ statement: String, schema: String, table: String, index: String?, constraint: String?, _ extras: Extras) throws -> [String] {
        let qualifiedTable = try PostgresIdentifier.qualified(schema: schema, name: table)
        var out: [String] = []
        if let tablespace = extras.tablespace {
            // default_tablespace is what CREATE INDEX and ADD CONSTRAINT use when they name none.
            out.append("SET LOCAL default_tablespace = \(try PostgresIdentifier.quoted(tablespace))")
            out.append(statement)
            out.append("SET LOCAL default_tablespace = DEFAULT")
        } else {
            out.append(statement)
        }
        if let constraint, let comment = extras.constraintComment {
            out.append("COMMENT ON CONSTRAINT \(try PostgresIdentifier.quoted(constraint)) ON \(qualifiedTable) IS \(PostgresLiteral.quoted(comment))")
        }
        guard let index else { return out }
        let qualifiedIndex = try PostgresIdentifier.qualified(schema: schema, name: index)
        if let comment = extras.indexComment { out.append("COMMENT ON INDEX \(qualifiedIndex) IS \(PostgresLiteral.quoted(comment))") }
        if extras.replicaIdentity { out.append("ALTER TABLE \(qualifiedTable) REPLICA IDENTITY USING INDEX \(try PostgresIdentifier.quoted(index))") }
        if extras.clustered { out.append("ALTER TABLE \(qualifiedTable) CLUSTER ON \(try PostgresIdentifier.quoted(index))") }
        return out
    }
}

extension SnapshotQueries {
    /// An index's extras: tablespace, replica identity, CLUSTER mark, comment (the columns
    /// `extrasColumns` selects for the index `i`/`ic`).
    static let extrasColumns = """
        (SELECT spcname FROM pg_tablespace WHERE oid = ic.reltablespace), i.indisreplident, i.indisclustered, obj_description(ic.oid, 'pg_class'), ic.relname
        """

    static func extras(_ row: PostgresRow, from column: Int, constraintComment: String? = nil) -> IndexRebuild.Extras {
        IndexRebuild.Extras(tablespace: row[column], replicaIdentity: row[column + 1] == "t", clustered: row[column + 2] == "t",
                            indexComment: row[column + 3], constraintComment: constraintComment, indexName: row[column + 4])
    }

    /// Every primary-key, unique, exclusion and foreign-key constraint of ordinary tables
    /// that is their own (a partition's inherited key cannot be dropped on its own: it
    /// stays while the partition loads).
    public static func keyConstraints(_ connection: PostgresConnection) async throws -> [IndexRebuild.Constraint] {
        try await connection.query("""
            SELECT n.nspname, c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid), rn.nspname || '.' || rc.relname,
                   obj_description(con.oid, 'pg_constraint'), \(extrasColumns)
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_class rc ON rc.oid = con.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            LEFT JOIN pg_index i ON i.indexrelid = con.conindid AND con.contype <> 'f' LEFT JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE con.contype IN ('p', 'u', 'x', 'f') AND c.relkind = 'r' AND con.conparentid = 0
            """).compactMap { row in
            guard let schema = row[0], let table = row[1], let name = row[2], let type = row[3], let definition = row[4] else { return nil }
            return .init(schema: schema, table: table, name: name, type: type, definition: definition, referenced: row[5],
                         extras: extras(row, from: 7, constraintComment: row[6]))
        }
    }

    /// Every index of ordinary tables that no constraint owns and that is not a partition
    /// of a partitioned table's index (which cannot be dropped on its own).
    public static func plainIndexes(_ connection: PostgresConnection) async throws -> [IndexRebuild.Index] {
        try await connection.query("""
            SELECT n.nspname, c.relname, ic.relname, pg_get_indexdef(i.indexrelid), \(extrasColumns)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE c.relkind = 'r' AND NOT ic.relispartition
              AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = c.oid AND con.contype IN ('p', 'u', 'x'))
            """).compactMap { row in
            guard let schema = row[0], let table = row[1], let name = row[2], let definition = row[3] else { return nil }
            return .init(schema: schema, table: table, name: name, definition: definition, extras: extras(row, from: 4))
        }
    }
}
