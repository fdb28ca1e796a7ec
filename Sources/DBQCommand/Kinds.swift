import Backups
import DatabaseJobs
import Exports
import Indexes
import Migrations
import Operations
import Queue
import Snapshots

/// The job kinds this binary runs and can push.
public enum Kinds {
    /// For pushing and checking payloads: the backup kinds decode but cannot run.
    public static var registry: JobRegistry {
        registry { throw CheckFailure("backup jobs need a worker's environment") }
    }

    /// Every kind, the backup kinds running in `environment`.
    public static func registry(_ environment: @escaping JobEnvironment.Provider) -> JobRegistry {
        var registry = JobRegistry.builtins
        registry.registerBackupJobs(environment: environment)
        registry.registerExportJobs(environment: environment)
        registry.registerSnapshotJobs(environment: environment)
        registry.registerMigrationJobs(environment: environment)
        registry.registerIndexJobs(environment: environment)
        registry.registerOperationsJobs(environment: environment)
        return registry
    }
}
