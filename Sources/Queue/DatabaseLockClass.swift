/// Which job kinds may run together on one database: one reader-writer lock per
/// database (`database:<name>`), taken by every job that touches it.
///
/// | class         | kinds                                                        | mode      |
/// |---------------|--------------------------------------------------------------|-----------|
/// | `read`        | backup, export, snapshot, validate-integrity, index-advice   | shared    |
/// | `maintenance` | vacuum, analyze, maintenance                                 | shared    |
/// | `build`       | create-index, drop-index, reindex: shared, and one at a time | shared +  |
/// |               | per database (`index-build:<name>`, exclusive)               | exclusive |
/// | `ddl`         | restore (into a configured database), import, migrate,       | exclusive |
/// |               | migrate-revert, rollback, partition changes                  |           |
///
/// So: reads, maintenance and one index build run side by side (a concurrent index build
/// does not block a backup's reads, nor they it); a DDL job runs alone, and the others
/// wait for it (bounded) and are retried, never failed for good.
public enum DatabaseLockClass: String, Sendable, CaseIterable {
    case read, maintenance, build, ddl

    static let kinds: [String: DatabaseLockClass] = [
        "backup": .read, "export": .read, "snapshot": .read, "validate-integrity": .read, "index-advice": .read,
        "vacuum": .maintenance, "analyze": .maintenance, "maintenance": .maintenance,
        "create-index": .build, "drop-index": .build, "reindex": .build,
        "import": .ddl, "restore": .ddl, "migrate": .ddl, "migrate-revert": .ddl, "rollback": .ddl, "partitions": .ddl,
    ]

    /// The class of a job kind that holds a database; nil for kinds that do not.
    public static func of(kind: String) -> DatabaseLockClass? { kinds[kind] }

    public var mode: LockMode { self == .ddl ? .exclusive : .shared }

    /// The lock's name for a configured database.
    public static func lockName(database: String) -> String { "database:\(database)" }

    /// The lock index builds of a database take alone, beside the shared database lock.
    public static func buildLockName(database: String) -> String { "index-build:\(database)" }

    /// Whether jobs of the two classes may hold one database at once.
    public static func compatible(_ a: DatabaseLockClass, _ b: DatabaseLockClass) -> Bool {
        a.mode == .shared && b.mode == .shared && !(a == .build && b == .build)
    }
}

extension ResourceLocks {
    /// Runs `body` holding `database`'s lock in the mode `kind`'s class takes (and, for an
    /// index build, the database's build lock alone), each held `ttl` past its last renewal.
    public func withDatabaseLock<T: Sendable>(
        _ database: String, kind: String, owner: String, wait: Duration, ttl: Duration = .seconds(30),
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard let lockClass = DatabaseLockClass.of(kind: kind) else { return try await body() }
        return try await withLock(DatabaseLockClass.lockName(database: database), mode: lockClass.mode, owner: owner, ttl: ttl, wait: wait) {
            guard lockClass == .build else { return try await body() }
            return try await self.withLock(DatabaseLockClass.buildLockName(database: database), mode: .exclusive, owner: owner,
                                           ttl: ttl, wait: wait, body)
        }
    }
}
