@testable import Queue
import Testing

@Suite("Database lock classes: which kinds may run together on one database")
struct DatabaseLockClassTests {
    @Test("reads, maintenance and one index build share a database; a DDL job runs alone")
    func table() {
        for a in DatabaseLockClass.allCases {
            for b in DatabaseLockClass.allCases {
                #expect(DatabaseLockClass.compatible(a, b) == (a != .ddl && b != .ddl && !(a == .build && b == .build)), "\(a) with \(b)")
                #expect(DatabaseLockClass.compatible(a, b) == DatabaseLockClass.compatible(b, a))
            }
        }
    }

    @Test("held for real: an export and a backup share the database; an import waits for both, and they for it")
    func held() async throws {
        let locks = MemoryLocks()
        let name = DatabaseLockClass.lockName(database: "main")
        // Holds that cannot lapse during the test, however long a loaded machine leaves it
        // waiting between two steps (a 30 s hold lapsed once, on a CI run beside another).
        let ttl = Duration.seconds(3600)
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.read.mode, owner: "export", ttl: ttl))
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.read.mode, owner: "backup", ttl: ttl))
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.maintenance.mode, owner: "vacuum", ttl: ttl))
        #expect(try await !locks.tryAcquire(name, mode: DatabaseLockClass.ddl.mode, owner: "import", ttl: ttl))
        do {
            _ = try await locks.withDatabaseLock("main", lockClass: .ddl, owner: "import", wait: .milliseconds(200), ttl: ttl) { 1 }
            Issue.record("an import ran beside an export")
        } catch {
            #expect("\(error)".contains("database:main is locked"), "\(error)")
        }
        for owner in ["export", "backup", "vacuum"] { try await locks.release(name, mode: .shared, owner: owner) }
        #expect(try await locks.tryAcquire(name, mode: DatabaseLockClass.ddl.mode, owner: "import", ttl: ttl))
        #expect(try await !locks.tryAcquire(name, mode: DatabaseLockClass.read.mode, owner: "backup2", ttl: ttl))
        // Index builds: beside a backup, one at a time.
        try await locks.release(name, mode: .exclusive, owner: "import")
        let started = try await locks.withDatabaseLock("main", lockClass: .read, owner: "backup3", wait: .seconds(1), ttl: ttl) {
            try await locks.withDatabaseLock("main", lockClass: .build, owner: "build1", wait: .seconds(1), ttl: ttl) {
                do {
                    _ = try await locks.withDatabaseLock("main", lockClass: .build, owner: "build2", wait: .milliseconds(200), ttl: ttl) { 1 }
                    return false
                } catch {
                    return "\(error)".contains("index-build:main is locked")
                }
            }
        }
        #expect(started, "a build runs beside a backup, and a second build waits for the first")
        // Another database is another lock.
        #expect(try await locks.tryAcquire(DatabaseLockClass.lockName(database: "other"), mode: .shared, owner: "backup2", ttl: ttl))
    }
}
