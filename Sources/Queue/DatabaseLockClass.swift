/// Which jobs may run together on one database: one reader-writer lock per database
/// (`database:<name>`), taken in the mode of the class a job's kind declares
/// (`Job.lockClass`; the queue names no kind).
///
/// | class         | mode                                                          |
/// |---------------|---------------------------------------------------------------|
/// | `read`        | shared                                                        |
/// | `maintenance` | shared                                                        |
/// | `build`       | shared, and one at a time per database (`index-build:<name>`) |
/// | `ddl`         | exclusive                                                     |
///
/// So: reads, maintenance and one index build run side by side (a concurrent index build
/// does not block a backup's reads, nor they it); a DDL job runs alone, and the others
/// wait for it (bounded) and are retried, never failed for good. Which kind is in which
/// class is a table of the kinds' own declarations, tested where they are registered.
public enum DatabaseLockClass: String, Sendable, CaseIterable {
    case read, maintenance, build, ddl

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
    /// Runs `body` holding `database`'s lock in the mode of `lockClass` (and, for an index
    /// build, the database's build lock alone), each held `ttl` past its last renewal; no
    /// lock when `lockClass` is nil.
    public func withDatabaseLock<T: Sendable>(
        _ database: String, lockClass: DatabaseLockClass?, owner: String, wait: Duration, ttl: Duration = .seconds(30),
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard let lockClass else { return try await body() }
        return try await withLock(DatabaseLockClass.lockName(database: database), mode: lockClass.mode, owner: owner, ttl: ttl, wait: wait) {
            guard lockClass == .build else { return try await body() }
            return try await self.withLock(DatabaseLockClass.buildLockName(database: database), mode: .exclusive, owner: owner,
                                           ttl: ttl, wait: wait, body)
        }
    }
}
