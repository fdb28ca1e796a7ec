import Anonymization
import DatabaseJobs
import PostgresClient

/// Reads what masking needs to know about tables from `pg_catalog`, in the connection's
/// current snapshot: columns and types, unique keys, foreign keys.
public enum ExportCatalogQuery {
    public static func load(_ connection: PostgresConnection) async throws -> TableCatalog {
        let columnRows = try await connection.query("""
            WITH RECURSIVE domains(oid, base, typmod) AS (
                SELECT t.oid, t.typbasetype, t.typtypmod FROM pg_type t WHERE t.typtype = 'd'
                UNION ALL
                SELECT d.oid, t.typbasetype, t.typtypmod FROM domains d JOIN pg_type t ON t.oid = d.base WHERE t.typtype = 'd'
            )
            SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   (SELECT format_type(d.base, d.typmod) FROM domains d JOIN pg_type b ON b.oid = d.base
                     WHERE d.oid = a.atttypid AND b.typtype <> 'd')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
            ORDER BY 1, 2, a.attnum
            """)
        var tables: [String: TableCatalog.Table] = [:]
        var order: [String] = []
        for row in columnRows {
            guard let schema = row[0], let name = row[1], let column = row[2], let type = row[3] else { continue }
            let key = "\(schema).\(name)"
            if tables[key] == nil {
                tables[key] = TableCatalog.Table(schema: schema, name: name, columns: [])
                order.append(key)
            }
            tables[key]!.columns.append(.init(name: column, type: type, notNull: row[4] == "t", baseType: row[5]))
        }
        let uniques = try await connection.query("""
            SELECT n.nspname || '.' || c.relname, array_to_string(ARRAY(
                     SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord), E'\\t')
            FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.indisunique AND c.relkind = 'r'
            """)
        for row in uniques {
            guard let table = row[0], let columns = row[1], !columns.isEmpty else { continue }
            tables[table]?.uniqueKeys.append(columns.split(separator: "\t").map(String.init))
        }
        let fks = try await connection.query("""
            SELECT con.conname, n.nspname || '.' || c.relname, rn.nspname || '.' || rc.relname,
                   array_to_string(ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), E'\\t'),
                   array_to_string(ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                                         JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), E'\\t')
            FROM pg_constraint con
            JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE con.contype = 'f'
            """)
        let foreignKeys = fks.compactMap { row -> TableCatalog.ForeignKey? in
            guard let name = row[0], let table = row[1], let referenced = row[2], let a = row[3], let b = row[4] else { return nil }
            return .init(name: name, table: table, columns: a.split(separator: "\t").map(String.init),
                         referenced: referenced, referencedColumns: b.split(separator: "\t").map(String.init))
        }
        return TableCatalog(tables: order.compactMap { tables[$0] }, foreignKeys: foreignKeys)
    }
}
