import ArgumentParser
import DBQCommand
import DBQConfig
import Crypto
import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import RedisClient
import RedisQueue

/// Round-trips data through each service dbq depends on and says, per service, whether
/// it works and, if not, what to do.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check Redis, PostgreSQL and a storage with a real round trip through each.",
        discussion: """
            Redis: AUTH, binary-safe SET/GET, a Lua script, and its eviction policy. \
            PostgreSQL: a parameterised query and a COPY of 100,000 rows in and out. \
            Storage: a table streamed by COPY into an object (multipart on S3), read back \
            and compared by SHA-256, then deleted.
            """
    )

    @OptionGroup var redis: RedisOptions

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Storage URL, s3://bucket/prefix or file:///path (default: file://$PWD/.dbq-storage).")
    var storage: String?

    @OptionGroup var s3: S3OptionGroup

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.check")
            let redisConfiguration = try redis.configuration()
            let databaseURL = try database.resolved()
            let storageURL = storage ?? DBQConfiguration.embeddedStorageURL

            try await checkRedis(redisConfiguration, logger: logger)
            let postgres = try await checkPostgres(databaseURL, logger: logger)
            try await checkStorage(storageURL, postgres: postgres, logger: logger)
            print("all checks passed")
        }
    }

    private func checkRedis(_ configuration: RedisConfiguration, logger: Logger) async throws {
        let connection = try await RedisConnection.connect(configuration, logger: logger)
        let key = RedisArgument("dbq:check:\(UUID().uuidString)")
        let value = RedisArgument((0...255).map { UInt8($0) })
        let started = ContinuousClock.now
        try await connection.send("SET", key, value, "EX", "60")
        let back = try await connection.send("GET", key)
        let roundTrip = ContinuousClock.now - started
        guard back.bytes == value.bytes else { throw CheckFailure("Redis returned other bytes than it was given") }
        let script = RedisScript("return redis.call('DEL', KEYS[1])")
        guard try await connection.run(script, keys: [key]).int == 1 else { throw CheckFailure("Redis Lua script did not run") }
        let info = (try? await connection.send("INFO", "server"))?.string ?? ""
        let version = info.split(separator: "\r\n").first { $0.hasPrefix("redis_version:") }?.split(separator: ":").last ?? "?"
        var line = "redis     ok  \(configuration.redactedURL)  version \(version), two commands in \(String(format: "%.2f", roundTrip.seconds * 1000)) ms, "
        switch try await RedisQueue.evictionPolicy(connection) {
        case .read(let policy):
            line += "maxmemory-policy \(policy)"
            if policy != "noeviction" { line += "  (WARNING: this policy can evict queue keys; workers refuse it)" }
        case .unreadable(let why):
            line += "maxmemory-policy unreadable (\(why); WARNING: make sure it is noeviction)"
        }
        print(line)
        await connection.close()
    }

    private func checkPostgres(_ url: String, logger: Logger) async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(url, logger: logger)
        let version = try await connection.query("SELECT current_setting('server_version') AS v, $1::int + 1 AS n", ["41"])
        guard version.first?.int("n") == 42 else { throw CheckFailure("PostgreSQL returned a wrong answer to 41 + 1") }
        try await connection.execute("CREATE TEMP TABLE dbq_check (id int PRIMARY KEY, payload text)")
        let rows = 100_000
        let source = ByteStream.chunks(stride(from: 0, to: rows, by: 10_000).map { start in
            Array((start..<min(rows, start + 10_000)).map { "\($0)\trow \($0) ✓\n" }.joined().utf8)
        })
        let copied = try await connection.copyIn("COPY dbq_check FROM STDIN", from: source)
        var hash = SHA256()
        var bytes = 0
        for try await chunk in connection.copyOut("COPY (SELECT * FROM dbq_check ORDER BY id) TO STDOUT") {
            hash.update(data: chunk)
            bytes += chunk.count
        }
        guard copied == rows else { throw CheckFailure("COPY FROM took \(copied) rows of \(rows)") }
        print("postgres  ok  \(connection.connectionString)  version \(version.first?["v"] ?? "?"), COPY \(rows) rows in and \(formatBytes(Int64(bytes))) out")
        return connection
    }

    private func checkStorage(_ url: String, postgres: PostgresConnection, logger: Logger) async throws {
        let store = try StorageURL(url).open(options: s3.s3Options(), logger: logger)
        let key = "dbq-check/\(UUID().uuidString).tsv"
        // 100,000 rows repeated to ~24 MiB so that S3 takes the multipart path.
        let sql = "COPY (SELECT c.* FROM dbq_check c, generate_series(1, 12)) TO STDOUT"
        let sent = StreamHasher()
        let info = try await store.put(key, from: postgres.copyOut(sql).tap { sent.update($0) })
        let received = StreamHasher()
        var size: Int64 = 0
        for try await chunk in try await store.get(key) {
            received.update(chunk)
            size += Int64(chunk.count)
        }
        try await store.delete(key)
        let a = sent.hex(), b = received.hex()
        guard a == b, size == info.size else {
            throw CheckFailure("storage \(url) returned different bytes (sha256 \(b.prefix(12)) ≠ \(a.prefix(12)))")
        }
        print("storage   ok  \(store.url)  \(formatBytes(size)) streamed from COPY, read back, sha256 \(a.prefix(16))… matches")
    }
}

/// A SHA-256 that chunks can be fed to from a stream's `tap`.
final class StreamHasher: Sendable {
    private let state = Mutex(SHA256())
    func update(_ chunk: [UInt8]) { state.withLock { $0.update(data: chunk) } }
    func hex() -> String { SigV4Signer.hex(state.withLock { $0.finalize() }) }
}

import Synchronization
