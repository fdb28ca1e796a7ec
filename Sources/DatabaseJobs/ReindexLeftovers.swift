import PostgresClient

/// What a failed `REINDEX … CONCURRENTLY` leaves behind: a `<name>_ccnew` index, INVALID,
/// that every later write to the table still maintains. Index builds and maintenance both
/// drop it after a failed attempt, so a retry (or the next action) starts clean.
public enum ReindexLeftovers {
    /// Drops (concurrently) every INVALID `_ccnew` index of `table` (`schema.table` text a
    /// regclass accepts); returns their names.
    @discardableResult
    public static func drop(table: String, connection: PostgresConnection) async throws -> [String] {
        let leftovers = try await connection.query("""
            SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = to_regclass($1) AND NOT i.indisvalid AND c.relname LIKE '%\\_ccnew%'
            """, [PostgresParameter(table)]).compactMap { $0[0] }
        for leftover in leftovers { _ = try? await connection.execute("DROP INDEX CONCURRENTLY IF EXISTS \(leftover)") }
        return leftovers
    }
}
