import DatabaseJobs
import DBQConfig
import DBQTestSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import Queue

/// What the job families' integration tests share: the test server, an environment whose
/// `main` database is a scratch database on it, a context for one attempt, a local store.
public enum JobFixtures {
    /// The PostgreSQL server `deploy/local/start.sh` runs.
    public static var server: PostgresConnectionString { ScratchDatabase.server }

    /// A connection to `database` on the test server (the caller closes it).
    public static func connect(_ database: String) async throws -> PostgresConnection { try await ScratchDatabase.connect(database) }

    /// The pg_dump a job chooses for the test server (at least its version), for tests
    /// that run one themselves or wrap it.
    public static func pgDump() async throws -> String {
        let c = try await connect("postgres")
        let number = Int(try await c.query("SHOW server_version_num").scalar ?? "0") ?? 0
        await c.close()
        return try await PostgresTools.tool("pg_dump", atLeast: PostgresTools.major(versionNumber: number), for: "the test server")
    }

    /// A job environment whose configured database `main` is `database` on the test
    /// server (or `databases`, name to URL), with `storage` as `archive` when given.
    public static func environment(main database: String? = nil, databases: [String: String] = [:], storage: StorageSettings? = nil,
                                   locks: any ResourceLocks = MemoryLocks(), lockWait: Duration = .seconds(30),
                                   logger: Logger = Logger(label: "dbq.test.jobs")) throws -> JobEnvironment {
        var configuration = try DBQConfiguration.parse("", file: nil, environment: [:])
        configuration.databases = try databases.mapValues { try PostgresConnectionString($0) }
        if let database { configuration.databases["main"] = try PostgresConnectionString(server.replacingDatabase(database)) }
        if let storage { configuration.storages = ["archive": storage] }
        return JobEnvironment(configuration: configuration, locks: locks, logger: logger, lockWait: lockWait)
    }

    /// A local directory store in a fresh temporary directory (or at `path`).
    public static func localStorage(_ label: String = "dbq-test", path: String? = nil) throws -> StorageSettings {
        StorageSettings(url: try StorageURL("file://" + (path ?? TestServices.temporaryDirectory(label))))
    }

    /// The context of one attempt of a job of `kind`.
    public static func context(_ kind: String, id: String = JobID.make(), attempt: Int = 1, token: Int64 = 1,
                               logger: Logger = Logger(label: "dbq.test.jobs"),
                               confirmLease: @escaping @Sendable () async throws -> Void = {}) -> JobContext {
        JobContext(id: id, kind: kind, queue: "test", attempt: attempt, fencingToken: token, logger: logger,
                   confirmLease: confirmLease, reportProgress: { _ in })
    }

    /// A result's fields (empty when it is not an object).
    public static func object(_ value: JSONValue?) -> [String: JSONValue] { if case .object(let o)? = value { o } else { [:] } }
}
