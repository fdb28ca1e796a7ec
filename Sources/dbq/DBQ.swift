import ArgumentParser

import DBQBench
import DBQCommand
@main
struct DBQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dbq",
        abstract: "Database-operations jobs for PostgreSQL, run by workers behind Redis.",
        discussion: """
            Exit codes: 0 success; 1 the operation failed (the message says why); \
            2 a check found something critical (dbq health, dbq beat status); \
            64 the command line is wrong.

            Environment: DBQ_REDIS_URL, DBQ_DATABASE_URL, DBQ_S3_ENDPOINT, \
            AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, DBQ_ANONYMIZE_KEY, DBQ_DASHBOARD_TOKEN, DBQ_LOG_LEVEL.
            """,
        version: DBQVersion.current,
        subcommands: [
            PushCommand.self, WorkerCommand.self, JobsCommand.self, DeadCommand.self, QueuesCommand.self, RunCommand.self, BeatCommand.self,
            BackupsCommand.self, BaseBackupsCommand.self, RetentionCommand.self, ExportCommand.self, ExportsCommand.self, SnapshotsCommand.self, MigrationsCommand.self, IndexesCommand.self, MaintenanceCommand.self, HealthCommand.self, StatsCommand.self, WALCommand.self, AnonymizeCommand.self, ConfigCommand.self, CheckCommand.self, StorageCommand.self, DashboardCommand.self, HealthcheckCommand.self, AlertsCommand.self, BenchCommand.self,
        ]
    )
}

enum DBQVersion {
    static let current = "0.1.0-dev"
}
