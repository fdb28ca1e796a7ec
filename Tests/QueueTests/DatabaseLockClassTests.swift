@testable import Queue
import Testing

@Suite("Database lock classes: which kinds may run together on one database")
struct DatabaseLockClassTests {
    @Test("reads and maintenance share a database; a DDL job runs alone; kinds that touch no database take no lock")
    func table() {
        let expected: [(String, DatabaseLockClass?)] = [
            ("backup", .read), ("export", .read), ("snapshot", .read),
            ("vacuum", .maintenance), ("analyze", .maintenance), ("reindex", .maintenance),
            ("import", .ddl), ("restore", .ddl), ("migrate", .ddl), ("rollback", .ddl), ("create-index", .ddl), ("partition", .ddl),
            ("retention", nil), ("verify-backup", nil), ("noop", nil), ("sleep", nil),
        ]
        for (kind, lockClass) in expected { #expect(DatabaseLockClass.of(kind: kind) == lockClass, "\(kind)") }
        for a in DatabaseLockClass.allCases {
            for b in DatabaseLockClass.allCases {
                #expect(DatabaseLockClass.compatible(a, b) == (a != .ddl && b != .ddl), "\(a) with \(b)")
                #expect(DatabaseLockClass.compatible(a, b) == DatabaseLockClass.compatible(b, a))
            }
        }
    }

    @Test("held for real: an export and a backup share the database; an import waits for both, and they for it")
    func held() async throws {
        let locks = MemoryLocks()
        let name = DatabaseLockClass.lockName(database: "main")
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.read.mode, owner: "export", ttl: .seconds(30)))
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.read.mode, owner: "backup", ttl: .seconds(30)))
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.maintenance.mode, owner: "vacuum", ttl: .seconds(30)))
        #expect(try await !locks.tryAcquire(name, mode: DatabaseLockClass.ddl.mode, owner: "import", ttl: .seconds(30)))
        do {
            _ = try await locks.withDatabaseLock("main", kind: "import", owner: "import", wait: .milliseconds(200)) { 1 }
            Issue.record("an import ran beside an export")
        } catch {
            #expect("\(error)".contains("database:main is locked"), "\(error)")
        }
        for owner in ["export", "backup", "vacuum"] { try await locks.release(name, mode: .shared, owner: owner) }
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.ddl.mode, owner: "import", ttl: .seconds(30)))
        #expect(try await !locks.tryAcquire(name, mode: DatabaseLockClass.read.mode, owner: "backup2", ttl: .seconds(30)))
        // Another database is another lock.
        #expect(try await locks.tryAcquire(DatabaseLockClass.lockName(database: "other"), mode: .shared, owner: "backup2", ttl: .seconds(30)))
    }
}
