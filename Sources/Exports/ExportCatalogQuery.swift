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
                     WHERE d.oid = a.atttypid AND b.typtype <> 'd'),
                   -- an array's (or a domain over an array's) element type, a domain read as its base
                   (SELECT format_type(COALESCE((SELECT d.base FROM domains d JOIN pg_type b ON b.oid = d.base
                                                  WHERE d.oid = e.oid AND b.typtype <> 'd'), e.oid), NULL)
                      FROM pg_type arr JOIN pg_type e ON e.oid = arr.typelem
                     WHERE arr.typcategory = 'A'
                       AND arr.oid = COALESCE((SELECT d.base FROM domains d JOIN pg_type b ON b.oid = d.base
                                                WHERE d.oid = a.atttypid AND b.typtype <> 'd'), a.atttypid))
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
            tables[key]!.columns.append(.init(name: column, type: type, notNull: row[4] == "t", baseType: row[5], elementType: row[6]))
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

    /// The DDL of the domains and enum types the exported tables' columns use (through
    /// arrays and domains over domains), in the order they depend on each other: what
    /// `pg_dump --table` leaves out, and without which the import's `CREATE TABLE` fails
    /// ("type public.mail[] does not exist"). Each statement creates its type only when
    /// the target has none of that name. Names are schema-qualified; read in the
    /// connection's snapshot.
    public static func typeDefinitions(_ connection: PostgresConnection, tables: [TableCatalog.Table]) async throws -> String {
        guard !tables.isEmpty else { return "" }
        let names = "{" + tables.map { "\"\($0.qualifiedName.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" }.joined(separator: ",") + "}"
        let rows = try await connection.query("""
            WITH RECURSIVE used(oid, depth) AS (
                SELECT DISTINCT a.atttypid, 0 FROM pg_attribute a
                 JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE a.attnum > 0 AND NOT a.attisdropped
                   AND n.nspname || '.' || c.relname = ANY($1::text[])
                UNION
                SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END, u.depth + 1
                  FROM used u JOIN pg_type t ON t.oid = u.oid
                 WHERE u.depth < 32 AND ((t.typtype = 'd') OR (t.typcategory = 'A' AND t.typelem <> 0))
            )
            SELECT quote_ident(n.nspname), quote_ident(n.nspname) || '.' || quote_ident(t.typname), t.typtype,
                   CASE WHEN bn.nspname = 'pg_catalog' THEN format_type(t.typbasetype, t.typtypmod)
                        ELSE quote_ident(bn.nspname) || '.' || quote_ident(b.typname) END,
                   t.typnotnull, t.typdefault,
                   -- CHECK constraints only: NOT NULL is typnotnull (PostgreSQL 17 on also lists
                   -- it here as contype 'n', and saying it twice is an error)
                   (SELECT string_agg(' CONSTRAINT ' || quote_ident(con.conname) || ' ' || pg_get_constraintdef(con.oid), '' ORDER BY con.conname)
                      FROM pg_constraint con WHERE con.contypid = t.oid AND con.contype = 'c'),
                   (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                   max(u.depth)
              FROM used u JOIN pg_type t ON t.oid = u.oid JOIN pg_namespace n ON n.oid = t.typnamespace
              LEFT JOIN pg_type b ON b.oid = t.typbasetype LEFT JOIN pg_namespace bn ON bn.oid = b.typnamespace
             WHERE t.typtype IN ('d', 'e') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             GROUP BY n.nspname, t.oid, t.typname, t.typtype, bn.nspname, b.typname, t.typbasetype, t.typtypmod, t.typnotnull, t.typdefault
             ORDER BY max(u.depth) DESC, 2
            """, [PostgresParameter(names)])
        var out = ""
        for row in rows {
            guard let schema = row[0], let name = row[1], let kind = row[2] else { continue }
            let create: String
            if kind == "e" {
                create = "CREATE TYPE \(name) AS ENUM (\(row[7] ?? ""))"
            } else {
                guard let base = row[3] else { continue }
                create = "CREATE DOMAIN \(name) AS \(base)" + (row[5].map { " DEFAULT \($0)" } ?? "") + (row[4] == "t" ? " NOT NULL" : "") + (row[6] ?? "")
            }
            // Created only where the target has no type of that name.
            let quoted = "'" + create.replacingOccurrences(of: "'", with: "''") + "'"
            out += "CREATE SCHEMA IF NOT EXISTS \(schema);\n"
            out += "DO $dbq$ BEGIN EXECUTE \(quoted); EXCEPTION WHEN duplicate_object THEN NULL; END $dbq$;\n"
        }
        return out.isEmpty ? "" : "-- types the exported columns use (dbq)\n" + out
    }
}
