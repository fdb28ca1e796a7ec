import ArgumentParser
import DBQConfig
import DBQSupport
import Foundation
import Logging
import Queue
import RedisClient
import RedisQueue

/// `--redis-url` for every command that talks to the queue.
public struct RedisOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("redis-url"), help: "Redis URL, redis://[user:password@]host:port[/db] (default: $DBQ_REDIS_URL, else redis: of dbq.yaml).")
    public var url: String?

    /// `--redis-url`, else `$DBQ_REDIS_URL`, else `redis:` of dbq.yaml (`$DBQ_CONFIG` or ./dbq.yaml).
    public func configuration(fallback: DBQConfiguration? = nil) throws -> RedisConfiguration {
        if let url = url ?? environment("DBQ_REDIS_URL") { return try RedisConfiguration(url: url) }
        if let redis = try (fallback ?? DBQConfiguration.load(path: nil)).redis { return redis }
        throw ValidationError("no Redis URL: pass --redis-url, set DBQ_REDIS_URL, or put redis: in dbq.yaml ($DBQ_CONFIG)")
    }

    public func queue(logger: Logger, connections: Int = 3) throws -> RedisQueue {
        RedisQueue(configuration: try configuration(), logger: logger, connections: connections)
    }
}

/// `--database-url` for commands that talk to PostgreSQL directly.
public struct DatabaseOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $DBQ_DATABASE_URL).")
    public var url: String?

    public func resolved() throws -> String {
        guard let url = url ?? environment("DBQ_DATABASE_URL") else {
            throw ValidationError("no PostgreSQL URL: pass --database-url or set DBQ_DATABASE_URL")
        }
        return url
    }
}
