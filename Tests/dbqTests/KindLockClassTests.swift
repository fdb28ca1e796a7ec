import Backups
@testable import DatabaseJobs
import Exports
import Indexes
import Migrations
import Operations
import Queue
import Snapshots
import Testing

@Suite("Lock classes as the kinds declare them")
struct KindLockClassTests {
    /// Every family's kinds, registered as the binary registers them.
    static var registry: JobRegistry {
        let environment: @Sendable () throws -> JobEnvironment = { throw JobError.permanent("not run") }
        var registry = JobRegistry.builtins
        registry.registerBackupJobs(environment: environment)
        registry.registerExportJobs(environment: environment)
        registry.registerSnapshotJobs(environment: environment)
        registry.registerMigrationJobs(environment: environment)
        registry.registerIndexJobs(environment: environment)
        registry.registerOperationsJobs(environment: environment)
        return registry
    }

    @Test("reads share a database, index builds and maintenance beside them, DDL alone; kinds that touch no database hold no lock")
    func table() {
        let expected: [String: DatabaseLockClass?] = [
            "backup": .read, "export": .read, "snapshot": .read, "validate-integrity": .read, "index-advice": .read,
            "maintenance": .maintenance,
            "create-index": .build, "drop-index": .build, "reindex": .build,
            "import": .ddl, "restore": .ddl, "migrate": .ddl, "migrate-revert": .ddl, "rollback": .ddl, "partitions": .ddl,
            "retention": nil, "verify-backup": nil, "snapshot-retention": nil, "health": nil, "stats": nil, "noop": nil, "sleep": nil,
        ]
        let registry = Self.registry
        for kind in registry.kinds {
            #expect(expected.keys.contains(kind), "kind '\(kind)' has no row in this table: say which lock class it takes")
            #expect(registry.lockClass(of: kind) == expected[kind] ?? nil, "\(kind)")
        }
        #expect(Set(expected.keys).subtracting(registry.kinds).isEmpty, "rows for kinds that are not registered: \(Set(expected.keys).subtracting(registry.kinds))")
    }
}
