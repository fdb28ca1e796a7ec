import PostgresClient
import Queue

/// A statement's progress as the server reports it (`pg_stat_progress_*`), read on a
/// second connection while the statement runs on the first: the job's progress bar for
/// builds and vacuums that say nothing until they end.
public enum ProgressWatch {
    /// Runs `body`; meanwhile, every half second, asks `query` on a second connection to
    /// `url` and hands its first row to `report`, which turns it into the job's progress
    /// (nil: nothing to report this time). The watcher stops and closes with `body`.
    public static func run(
        url: PostgresConnectionString, context: JobContext, query: String,
        report: @escaping @Sendable (PostgresRow) -> JobProgress?,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask {
                guard let watcher = try? await PostgresConnection.connect(url.raw, logger: context.logger, applicationName: "dbq progress") else { return }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(500))
                    guard let row = try? await watcher.query(query).first, let progress = report(row) else { continue }
                    await context.progress(progress)
                }
                await watcher.close()
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
