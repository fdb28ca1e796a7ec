/// Which job kinds may run together on one database: one reader-writer lock per
/// database (`database:<name>`), taken by every job that touches it.
///
/// | class         | kinds                                                        | mode      |
/// |---------------|--------------------------------------------------------------|-----------|
/// | `read`        | backup, export, snapshot, validate-integrity (verify and      | shared    |
/// |               | restore read artefacts)                                      |           |
/// | `maintenance` | vacuum, analyze, reindex                                     | shared    |
/// | `ddl`         | restore (into a configured database), import, migrate,       | exclusive |
/// |               | rollback, index builds, partition changes                     |           |
///
/// Reads and maintenance run side by side; a DDL job runs alone, and maintenance yields
/// to it (both wait, bounded, and are retried, never failed for good).
public enum DatabaseLockClass: String, Sendable, CaseIterable {
    case read, maintenance, ddl

    static let kinds: [String: DatabaseLockClass] = [
        "backup": .read, "export": .read, "snapshot": .read, "validate-integrity": .read,
        "vacuum": .maintenance, "analyze": .maintenance, "reindex": .maintenance, "maintenance": .maintenance,
        "import": .ddl, "restore": .ddl, "migrate": .ddl, "migrate-revert": .ddl, "rollback": .ddl, "create-index": .ddl, "index-build": .ddl, "partition": .ddl,
    ]

    /// The class of a job kind that holds a database; nil for kinds that do not.
    public static func of(kind: String) -> DatabaseLockClass? { kinds[kind] }

    public var mode: LockMode { self == .ddl ? .exclusive : .shared }

    /// The lock's name for a configured database.
    public static func lockName(database: String) -> String { "database:\(database)" }

    /// Whether jobs of the two classes may hold one database at once.
    public static func compatible(_ a: DatabaseLockClass, _ b: DatabaseLockClass) -> Bool {
        a.mode == .shared && b.mode == .shared
    }
}

extension ResourceLocks {
    /// Runs `body` holding `database`'s lock in the mode `kind`'s class takes.
    public func withDatabaseLock<T: Sendable>(
        _ database: String, kind: String, owner: String, wait: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard let lockClass = DatabaseLockClass.of(kind: kind) else { return try await body() }
        return try await withLock(DatabaseLockClass.lockName(database: database), mode: lockClass.mode, owner: owner, wait: wait, body)
    }
}
