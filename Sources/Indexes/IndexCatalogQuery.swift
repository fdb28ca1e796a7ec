import DatabaseJobs
import PostgresClient

/// Reads an `IndexCatalog` from `pg_catalog` and the statistics views: every schema but the
/// system ones, names always schema-qualified.
public enum IndexCatalogQuery {
    static let userSchemas = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\\\_temp%'"

    public static func load(_ connection: PostgresConnection) async throws -> IndexCatalog {
        let indexRows = try await connection.query("""
            SELECT n.nspname, t.relname, c.relname, am.amname,
                   array_to_string(ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k), E'\\t'),
                   array_to_string(ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(i.indnkeyatts + 1, i.indnatts) k), E'\\t'),
                   pg_get_expr(i.indpred, i.indrelid, true), i.indisunique,
                   (SELECT con.conname FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') LIMIT 1),
                   i.indisvalid, coalesce(s.idx_scan, 0), pg_relation_size(i.indexrelid), pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = c.relam
            LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
            WHERE t.relkind IN ('r', 'm', 'p') AND \(userSchemas)
            ORDER BY 1, 2, 3
            """)
        let indexes = indexRows.compactMap { r -> IndexCatalog.Index? in
            guard let schema = r[0], let table = r[1], let name = r[2] else { return nil }
            // The keys with their operator class, collation and ordering, from the whole
            // statement; the per-column form (which has none of them) if it will not split.
            let columns = (keys: (r[4] ?? "").split(separator: "\t").map(String.init), include: (r[5] ?? "").split(separator: "\t").map(String.init))
            let split = IndexKey.split(definition: r[12] ?? "")
            let (keys, include) = split.map { $0.keys.count == columns.keys.count && $0.include.count == columns.include.count } == true ? split! : columns
            return IndexCatalog.Index(schema: schema, table: table, name: name, method: r[3] ?? "btree", keys: keys, include: include,
                                      predicate: r[6], unique: r[7] == "t", constraint: r[8], valid: r[9] == "t", scans: Int64(r[10] ?? "0") ?? 0,
                                      bytes: Int64(r[11] ?? "0") ?? 0, definition: r[12] ?? "")
        }
        let tableRows = try await connection.query("""
            SELECT n.nspname, c.relname,
                   array_to_string(ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), E'\\t'),
                   greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint), coalesce(s.seq_scan, 0), coalesce(s.idx_scan, 0),
                   coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0), pg_table_size(c.oid), c.relkind = 'p'
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND \(userSchemas)
               OR c.relkind = 'r' AND c.relispartition AND \(userSchemas)
            ORDER BY 1, 2
            """)
        let tables = tableRows.compactMap { r -> IndexCatalog.Table? in
            guard let schema = r[0], let name = r[1] else { return nil }
            return IndexCatalog.Table(schema: schema, name: name, columns: (r[2] ?? "").split(separator: "\t").map(String.init),
                                      liveRows: Int64(r[3] ?? "0") ?? 0, seqScans: Int64(r[4] ?? "0") ?? 0, indexScans: Int64(r[5] ?? "0") ?? 0,
                                      writes: Int64(r[6] ?? "0") ?? 0, bytes: Int64(r[7] ?? "0") ?? 0, partitioned: r[8] == "t")
        }
        let fkRows = try await connection.query("""
            SELECT n.nspname, c.relname, con.conname,
                   array_to_string(ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), E'\\t'),
                   rn.nspname || '.' || rc.relname
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE con.contype = 'f' AND con.conparentid = 0 AND \(userSchemas) ORDER BY 1, 2, 3
            """)
        let fks = fkRows.compactMap { r -> IndexCatalog.ForeignKey? in
            guard let schema = r[0], let table = r[1], let name = r[2], let columns = r[3], let referenced = r[4] else { return nil }
            return IndexCatalog.ForeignKey(schema: schema, table: table, name: name, columns: columns.split(separator: "\t").map(String.init), referenced: referenced)
        }
        // The statistics start when they were reset, or (never reset) when the database was
        // created: its directory's PG_VERSION file (readable by superusers and
        // pg_read_server_files; otherwise the age is unknown).
        var age = try await connection.query("SELECT extract(epoch FROM now() - stats_reset) FROM pg_stat_database WHERE datname = current_database()")
            .scalar.flatMap(Double.init)
        if age == nil {
            age = (try? await connection.query("""
                SELECT extract(epoch FROM now() - (pg_stat_file('base/' || oid || '/PG_VERSION', true)).modification) FROM pg_database WHERE datname = current_database()
                """))?.scalar.flatMap(Double.init)
        }
        return IndexCatalog(indexes: indexes, tables: tables, foreignKeys: fks, statsAgeSeconds: age)
    }
}
