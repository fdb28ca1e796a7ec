import DBQCommand
import Queue
import Testing

@Suite("Lock classes as the kinds declare them")
struct KindLockClassTests {
    @Test("reads share a database, index builds and maintenance beside them, DDL alone; kinds that touch no database hold no lock")
    func table() {
        let expected: [String: DatabaseLockClass?] = [
            "backup": .read, "export": .read, "snapshot": .read, "validate-integrity": .read, "index-advice": .read,
            "maintenance": .maintenance,
            "create-index": .build, "drop-index": .build, "reindex": .build,
            "import": .ddl, "restore": .ddl, "migrate": .ddl, "migrate-revert": .ddl, "rollback": .ddl, "partitions": .ddl,
            "basebackup": .read, "pitr-restore": nil, "verify-basebackup": nil, "basebackup-retention": nil,
            "retention": nil, "verify-backup": nil, "snapshot-retention": nil, "health": nil, "stats": nil, "noop": nil, "sleep": nil,
        ]
        let registry = Kinds.registry  // every family's kinds, as the binary registers them
        for kind in registry.kinds {
            #expect(expected.keys.contains(kind), "kind '\(kind)' has no row in this table: say which lock class it takes")
            #expect(registry.lockClass(of: kind) == expected[kind] ?? nil, "\(kind)")
        }
        #expect(Set(expected.keys).subtracting(registry.kinds).isEmpty, "rows for kinds that are not registered: \(Set(expected.keys).subtracting(registry.kinds))")
    }
}
