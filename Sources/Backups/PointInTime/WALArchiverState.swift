import Foundation
import Logging
import PostgresClient
import Queue

/// The server's own account of archiving (`pg_stat_archiver`): what it archived last and
/// when, and whether its last attempt failed (a failure after the last success).
public struct WALArchiverState: Sendable, Codable, Equatable {
    public var archivedCount: Int64
    public var lastArchivedWAL: String?
    public var lastArchivedTime: String?
    public var failedCount: Int64
    public var lastFailedWAL: String?
    public var lastFailedTime: String?
    /// Seconds since the last success (nil before the first).
    public var secondsSinceArchived: Double?
    /// True when the last attempt failed: PostgreSQL keeps the segment and retries, and
    /// pg_wal grows until it succeeds.
    public var failing: Bool

    public static func read(_ url: PostgresConnectionString, logger: Logger = Logger(label: "dbq.wal")) async throws -> WALArchiverState {
        let c = try await PostgresConnection.connect(url.raw, logger: logger)
        defer { Task { await c.close() } }
        let rows = try await c.query("""
            SELECT archived_count, last_archived_wal, last_archived_time::text, failed_count, last_failed_wal, last_failed_time::text,
                   extract(epoch FROM now() - last_archived_time),
                   coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
            FROM pg_stat_archiver
            """)
        guard let r = rows.first else { throw JobError.retryable("pg_stat_archiver returned no row") }
        return WALArchiverState(archivedCount: Int64(r[0] ?? "0") ?? 0, lastArchivedWAL: r[1], lastArchivedTime: r[2],
                                failedCount: Int64(r[3] ?? "0") ?? 0, lastFailedWAL: r[4], lastFailedTime: r[5],
                                secondsSinceArchived: r[6].flatMap(Double.init), failing: r[7] == "t")
    }
}
