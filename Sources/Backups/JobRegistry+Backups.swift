import CoreMetrics
import DatabaseJobs
import Foundation
import Queue

extension JobRegistry {
    /// Registers backup, restore, verify-backup and retention. `environment` is called
    /// when a job runs (a pusher only decodes payloads and never calls it).
    public mutating func registerBackupJobs(environment: @escaping JobEnvironment.Provider) {
        register(BackupJob.self, environment: environment)
        register(RestoreJob.self, environment: environment)
        register(VerifyBackupJob.self, environment: environment)
        register(RetentionJob.self, environment: environment)
        register(BaseBackupJob.self, environment: environment)
        register(PITRRestoreJob.self, environment: environment)
        register(VerifyBaseBackupJob.self, environment: environment)
        register(BaseBackupRetentionJob.self, environment: environment)
    }
}

extension BackupJob {
    /// `dbq_backup_last_size_bytes{database}` and `dbq_backup_last_success_timestamp_seconds{database}`.
    public static func recordMetrics(result: JSONValue) {
        guard case .object(let fields) = result, case .string(let database)? = fields["database"],
              case .number(let size)? = fields["size"] else { return }
        Gauge(label: "dbq_backup_last_size_bytes", dimensions: [("database", database)]).record(size)
        Gauge(label: "dbq_backup_last_success_timestamp_seconds", dimensions: [("database", database)]).record(Date().timeIntervalSince1970)
    }
}

extension VerifyBackupJob {
    /// `dbq_backup_last_verified_timestamp_seconds{database}` when a verification passed.
    public static func recordMetrics(result: JSONValue) {
        guard case .object(let fields) = result, case .string(let database)? = fields["database"],
              fields["outcome"] == .string("passed") else { return }
        Gauge(label: "dbq_backup_last_verified_timestamp_seconds", dimensions: [("database", database)]).record(Date().timeIntervalSince1970)
    }
}
