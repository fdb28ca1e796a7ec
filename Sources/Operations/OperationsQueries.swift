import DatabaseJobs
import Foundation
import PostgresClient

/// What maintenance, health and stats read from the server.
public enum OperationsQueries {
    static let userSchemas = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\\\_temp%'"

    public static func tableVitals(_ c: PostgresConnection) async throws -> [TableVitals] {
        try await c.query("""
            SELECT n.nspname, cl.relname, coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), coalesce(s.n_mod_since_analyze, 0),
                   age(cl.relfrozenxid), pg_table_size(cl.oid)
            FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = cl.oid
            WHERE cl.relkind IN ('r', 'm') AND \(userSchemas) ORDER BY 1, 2
            """).compactMap { r in
            guard let schema = r[0], let name = r[1] else { return nil }
            return TableVitals(schema: schema, name: name, liveRows: Int64(r[2] ?? "0") ?? 0, deadRows: Int64(r[3] ?? "0") ?? 0,
                               modifiedSinceAnalyze: Int64(r[4] ?? "0") ?? 0, xidAge: Int64(r[5] ?? "0") ?? 0, bytes: Int64(r[6] ?? "0") ?? 0)
        }
    }

    /// B-tree indexes of at least `minimumBytes`, with their empty share: measured by
    /// `pgstattuple` when the extension is there, else estimated from the statistics
    /// (rows × average key width against the pages the index holds).
    public static func indexVitals(_ c: PostgresConnection, minimumBytes: Int64) async throws -> [IndexVitals] {
        let measured = try await c.query("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple')").scalar == "t"
        let bloat = measured
            ? "greatest(0, 1 - (pgstatindex(i.indexrelid::regclass)).avg_leaf_density / 90.0)"
            : """
              greatest(0, 1 - (ct.reltuples * (12 + coalesce((SELECT sum(coalesce(st.avg_width, 8)) FROM pg_attribute a
                    LEFT JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = t.relname AND st.attname = a.attname
                    WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)), 8))) / (greatest(ct.relpages - 1, 1) * 8192 * 0.9))
              """
        return try await c.query("""
            SELECT n.nspname, t.relname, ct.relname, pg_relation_size(i.indexrelid), \(bloat)
            FROM pg_index i JOIN pg_class ct ON ct.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = ct.relam
            WHERE am.amname = 'btree' AND i.indisvalid AND t.relkind = 'r' AND \(userSchemas) AND pg_relation_size(i.indexrelid) >= \(minimumBytes)
              AND ct.reltuples > 0
            ORDER BY 1, 2, 3
            """).compactMap { r in
            guard let schema = r[0], let table = r[1], let name = r[2] else { return nil }
            return IndexVitals(schema: schema, table: table, name: name, bytes: Int64(r[3] ?? "0") ?? 0, bloat: Double(r[4] ?? "0") ?? 0, measured: measured)
        }
    }

    /// The longest open transaction in this database other than this session's (seconds;
    /// another database's transactions do not hold back this one's vacuum), and
    /// replication lag (seconds): maintenance's preflight.
    public static func preflight(_ c: PostgresConnection) async throws -> (transaction: HealthFacts.Session?, lagSeconds: Double?) {
        let tx = try await c.query("""
            SELECT pid, extract(epoch FROM now() - xact_start), left(coalesce(query, ''), 200) FROM pg_stat_activity
            WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = current_database()
            ORDER BY xact_start LIMIT 1
            """).first.flatMap { r in r[0].flatMap(Int.init).map { HealthFacts.Session(pid: $0, seconds: Double(r[1] ?? "0") ?? 0, query: r[2] ?? "") } }
        let lag = try await c.query("SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication").scalar.flatMap(Double.init)
        return (tx, lag)
    }

    public static func healthFacts(_ c: PostgresConnection) async throws -> HealthFacts {
        var f = HealthFacts(maxConnections: Int(try await c.query("SHOW max_connections").scalar ?? "100") ?? 100)
        for r in try await c.query("SELECT coalesce(state, 'other'), count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1") {
            if let state = r[0], let n = r[1].flatMap(Int.init) { f.connectionsByState[state] = n }
        }
        func session(_ r: PostgresRow) -> HealthFacts.Session? {
            r[0].flatMap(Int.init).map { HealthFacts.Session(pid: $0, seconds: Double(r[1] ?? "0") ?? 0, query: r[2] ?? "") }
        }
        f.idleInTransaction = try await c.query("""
            SELECT pid, extract(epoch FROM now() - state_change), left(coalesce(query, ''), 200) FROM pg_stat_activity
            WHERE state IN ('idle in transaction', 'idle in transaction (aborted)') AND datname = current_database() ORDER BY state_change
            """).compactMap(session)
        f.longestTransaction = try await c.query("""
            SELECT pid, extract(epoch FROM now() - xact_start), left(coalesce(query, ''), 200) FROM pg_stat_activity
            WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = current_database()
            ORDER BY xact_start LIMIT 1
            """).first.flatMap(session)
        f.longestQuery = try await c.query("""
            SELECT pid, extract(epoch FROM now() - query_start), left(coalesce(query, ''), 200) FROM pg_stat_activity
            WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = current_database()
            ORDER BY query_start LIMIT 1
            """).first.flatMap(session)
        // Sessions of this database (another database's sessions cannot hold its tables' locks).
        let activity = Dictionary(try await c.query("""
            SELECT pid, extract(epoch FROM now() - coalesce(query_start, xact_start, backend_start)), left(coalesce(query, ''), 200),
                   array_to_string(pg_blocking_pids(pid), ',') FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = current_database()
            """).compactMap { r -> (Int, (HealthFacts.Session, [Int]))? in
            guard let s = session(r) else { return nil }
            return (s.pid, (s, (r[3] ?? "").split(separator: ",").compactMap { Int($0) }))
        }, uniquingKeysWith: { a, _ in a })
        for (pid, (s, blockers)) in activity.sorted(by: { $0.key < $1.key }) where !blockers.isEmpty {
            var chain: [HealthFacts.Session] = []
            var next = blockers.first
            var seen: Set<Int> = [pid]
            while let b = next, !seen.contains(b) {
                seen.insert(b)
                chain.append(activity[b]?.0 ?? HealthFacts.Session(pid: b, seconds: 0, query: "?"))
                next = activity[b]?.1.first
            }
            f.blocked.append(HealthFacts.Blocked(pid: pid, seconds: s.seconds, query: s.query, blockers: chain))
        }
        f.replicas = try await c.query("SELECT coalesce(application_name, client_addr::text, '?'), extract(epoch FROM replay_lag) FROM pg_stat_replication").map {
            HealthFacts.Replica(name: $0[0] ?? "?", lagSeconds: $0[1].flatMap(Double.init))
        }
        f.slots = try await c.query("""
            SELECT slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint FROM pg_replication_slots
            """).map { HealthFacts.Slot(name: $0[0] ?? "?", active: $0[1] == "t", retainedBytes: Int64($0[2] ?? "0") ?? 0) }
        if try await c.query("SHOW archive_mode").scalar != "off" {
            let r = try await c.query("""
                SELECT last_archived_wal, extract(epoch FROM now() - last_archived_time), last_failed_wal,
                       coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
                FROM pg_stat_archiver
                """).first
            // Listing archive_status needs pg_monitor (or superuser): without it, unknown.
            let waiting = try? await c.query("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'").scalar.flatMap { Int($0) }
            f.archiving = HealthFacts.Archiving(lastArchivedWAL: r?[0], secondsSinceArchived: r?[1].flatMap(Double.init), lastFailedWAL: r?[2],
                                                failing: r?[3] == "t", waiting: waiting ?? nil)
        }
        f.xidAge = Int64(try await c.query("SELECT max(age(datfrozenxid)) FROM pg_database").scalar ?? "0") ?? 0
        f.multixactAge = Int64(try await c.query("SELECT max(mxid_age(datminmxid)) FROM pg_database").scalar ?? "0") ?? 0
        f.freezeMaxAge = Int64(try await c.query("SHOW autovacuum_freeze_max_age").scalar ?? "200000000") ?? 200_000_000
        f.cacheHit = try await c.query("""
            SELECT CASE WHEN blks_hit + blks_read >= 1000 THEN blks_hit::float8 / (blks_hit + blks_read) END FROM pg_stat_database WHERE datname = current_database()
            """).scalar.flatMap(Double.init)
        // PostgreSQL 17 moved the checkpoint counters to pg_stat_checkpointer (and named them anew).
        let serverVersion = Int(try await c.query("SHOW server_version_num").scalar ?? "0") ?? 0
        let checkpoints = serverVersion >= 170000
            ? "SELECT num_timed, num_requested FROM pg_stat_checkpointer"
            : "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter"
        if let r = try await c.query(checkpoints).first {
            f.checkpointsTimed = Int64(r[0] ?? "0") ?? 0
            f.checkpointsRequested = Int64(r[1] ?? "0") ?? 0
        }
        f.invalidIndexes = try await c.query("""
            SELECT n.nspname || '.' || ct.relname FROM pg_index i JOIN pg_class ct ON ct.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ct.relnamespace
            WHERE NOT i.indisvalid ORDER BY 1
            """).compactMap { $0[0] }
        // A sequence runs out at the smaller of its own maximum and its column's type: an
        // int column fed by a bigint sequence (common after upgrades from before
        // PostgreSQL 10) fails at 2^31 - 1, whatever the sequence allows.
        f.sequences = try await c.query("""
            SELECT s.schemaname || '.' || s.sequencename,
                   CASE WHEN a.atttypid IS NOT NULL AND format_type(a.atttypid, NULL) <> s.data_type::text
                        THEN s.data_type::text || ' sequence, ' || format_type(a.atttypid, NULL) || ' column'
                        ELSE s.data_type::text END,
                   coalesce(s.last_value, s.start_value),
                   least(s.max_value, CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647 ELSE s.max_value END)
            FROM pg_sequences s
            JOIN pg_namespace n ON n.nspname = s.schemaname
            JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = n.oid
            LEFT JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                                 AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
            LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE s.increment_by > 0 ORDER BY 1
            """).compactMap { r in
            guard let name = r[0], let type = r[1], let last = r[2].flatMap({ Int64($0) }), let max = r[3].flatMap({ Int64($0) }) else { return nil }
            return HealthFacts.Sequence(name: name, type: type, lastValue: last, maxValue: max)
        }
        f.databaseBytes = Int64(try await c.query("SELECT pg_database_size(current_database())").scalar ?? "0") ?? 0
        return f
    }

    public static func statsSample(_ c: PostgresConnection, database: String) async throws -> StatsSample {
        let limit = StatsSample.limit
        let tables = try await c.query("""
            SELECT n.nspname || '.' || cl.relname, coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), pg_total_relation_size(cl.oid),
                   pg_relation_size(cl.oid), coalesce(pg_total_relation_size(nullif(cl.reltoastrelid, 0)), 0), pg_indexes_size(cl.oid),
                   coalesce(s.seq_scan, 0), coalesce(s.idx_scan, 0)
            FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = cl.oid
            WHERE cl.relkind IN ('r', 'm', 'p') AND \(userSchemas) ORDER BY 4 DESC, 1 LIMIT \(limit)
            """).compactMap { r -> StatsSample.Table? in
            guard let name = r[0] else { return nil }
            func n(_ i: Int) -> Int64 { Int64(r[i] ?? "0") ?? 0 }
            return StatsSample.Table(name: name, rows: n(1), deadRows: n(2), totalBytes: n(3), tableBytes: n(4), toastBytes: n(5), indexBytes: n(6),
                                     seqScans: n(7), indexScans: n(8))
        }
        let indexes = try await c.query("""
            SELECT s.schemaname || '.' || s.indexrelname, s.schemaname || '.' || s.relname, pg_relation_size(s.indexrelid), s.idx_scan
            FROM pg_stat_user_indexes s ORDER BY 3 DESC, 1 LIMIT \(limit)
            """).compactMap { r -> StatsSample.Index? in
            guard let name = r[0], let table = r[1] else { return nil }
            return StatsSample.Index(name: name, table: table, bytes: Int64(r[2] ?? "0") ?? 0, scans: Int64(r[3] ?? "0") ?? 0)
        }
        var statements: [StatsSample.Statement] = []
        var note: String?
        if try await c.query("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AND current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'").scalar == "t" {
            statements = try await c.query("""
                SELECT queryid::text, left(query, 300), calls, total_exec_time, mean_exec_time, rows, shared_blks_hit, shared_blks_read
                FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
                ORDER BY total_exec_time DESC LIMIT \(limit)
                """).compactMap { r -> StatsSample.Statement? in
                guard let id = r[0], let query = r[1] else { return nil }
                return StatsSample.Statement(id: id, query: query, calls: Int64(r[2] ?? "0") ?? 0, totalMs: Double(r[3] ?? "0") ?? 0,
                                             meanMs: Double(r[4] ?? "0") ?? 0, rows: Int64(r[5] ?? "0") ?? 0,
                                             blocksHit: Int64(r[6] ?? "0") ?? 0, blocksRead: Int64(r[7] ?? "0") ?? 0)
            }
        } else {
            note = "pg_stat_statements is not available in database '\(database)' (shared_preload_libraries and CREATE EXTENSION pg_stat_statements): no statements"
        }
        return StatsSample(format: StatsSample.currentFormat, database: database, takenAt: Date(),
                           databaseBytes: Int64(try await c.query("SELECT pg_database_size(current_database())").scalar ?? "0") ?? 0,
                           tables: tables, indexes: indexes, statements: statements, note: note)
    }
}
