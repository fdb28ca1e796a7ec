import DBQSupport
import Logging
import PostgresClient
import Queue

/// A configured database as one attempt of a job holds it: its name and URL, the lock
/// owner that attempt takes locks as, and connections that are closed (awaited) when the
/// work ends, however it ends.
public struct DatabaseScope: Sendable {
    /// The configured name (`main`).
    public let name: String
    public let url: PostgresConnectionString
    /// `<job id>#<fencing token>`: who holds a lock, so a lapsed attempt's lock is told
    /// apart from its successor's.
    public let owner: String
    public let context: JobContext

    public init(name: String, url: PostgresConnectionString, context: JobContext) {
        self.name = name
        self.url = url
        self.context = context
        owner = Self.owner(context)
    }

    /// The lock owner of one attempt of a job.
    public static func owner(_ context: JobContext) -> String { "\(context.id)#\(context.fencingToken)" }

    /// Opens a connection; what no retry cures (a wrong password, a missing database) is
    /// a permanent error naming the database. The caller closes it; `withConnection`
    /// does that for it.
    public func connect(application: String) async throws -> PostgresConnection {
        try await Self.connect(url, database: name, application: application, logger: context.logger)
    }

    /// Runs `body` on a new connection and closes it before returning or throwing.
    public func withConnection<T>(application: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await Self.withConnection(url, database: name, application: application, logger: context.logger, body)
    }

    /// Opens `url` for a job, classifying what fails.
    public static func connect(_ url: PostgresConnectionString, database: String, application: String, logger: Logger) async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(url.raw, logger: logger, applicationName: application)
        } catch {
            throw classifyConnect(error, database: database)
        }
    }

    /// Runs `body` on a new connection to `url` and closes it (awaited) however it ends.
    public static func withConnection<T>(
        _ url: PostgresConnectionString, database: String, application: String, logger: Logger,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let connection = try await connect(url, database: database, application: application, logger: logger)
        do {
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Errors from connecting that no retry will cure: wrong password, missing database or role.
    public static func classifyConnect(_ error: any Error, database: String) -> any Error {
        guard let error = error as? PostgresError else { return error }
        let text = "\(error)"
        let permanent = ["password authentication failed", "does not exist", "no password supplied", "no pg_hba.conf entry", "permission denied"]
        if permanent.contains(where: text.contains) {
            return JobError.permanent("database '\(database)': \(text)")
        }
        return JobError("database '\(database)': \(text)", retryable: error.isTransient)
    }
}

extension JobEnvironment {
    /// The scope of `database` for one attempt of a job of kind `J`: the configured
    /// database (an unknown name is a permanent error), held under the lock class `J`
    /// declares for as long as `body` runs.
    public func withDatabase<J: JobKind, T: Sendable>(
        _ database: String, for kind: J.Type, context: JobContext, _ body: @escaping @Sendable (DatabaseScope) async throws -> T
    ) async throws -> T {
        let scope = DatabaseScope(name: database, url: try self.database(database), context: context)
        return try await locks.withDatabaseLock(database, lockClass: J.lockClass, owner: scope.owner, wait: lockWait) {
            try await body(scope)
        }
    }

    /// Holds `database`'s lock in `J`'s class, without resolving it in the configuration
    /// (a restore's target may be a new database on the source's server).
    public func withDatabaseLock<J: JobKind, T: Sendable>(
        _ database: String, for kind: J.Type, context: JobContext, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await locks.withDatabaseLock(database, lockClass: J.lockClass, owner: DatabaseScope.owner(context), wait: lockWait, body)
    }
}
