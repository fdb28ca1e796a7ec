import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import RedisClient

/// Throughput of the three wire clients over loopback.
struct BenchClients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "Redis commands/s (unpipelined, pipelined), COPY TO MB/s, S3 upload MB/s.",
        discussion: "Each figure is the median of --runs runs. deploy/local/bench-clients.sh runs this beside redis-benchmark, psql \\copy and aws s3 cp on the same servers."
    )

    @OptionGroup var redis: RedisOptions

    @OptionGroup var database: DatabaseOptions

    @Option(help: "S3 bucket URL for the upload figure (default: s3://$DBQ_S3_BUCKET).")
    var s3URL: String?

    @OptionGroup var s3: S3OptionGroup

    @Option(help: "Commands per Redis run.")
    var redisCommands: Int = 20_000

    @Option(help: "Rows in the COPY table (about 100 bytes each).")
    var copyRows: Int = 2_000_000

    @Option(help: "MiB uploaded per S3 run.")
    var uploadMiB: Int = 256

    @Option(help: "Runs per figure.")
    var runs: Int = 3

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let redisConfiguration = try redis.configuration()
            let databaseURL = try database.resolved()
            guard let s3URL = s3URL ?? environment("DBQ_S3_BUCKET").map({ "s3://\($0)/dbq-bench" }) else {
                throw ValidationError("pass --s3-url or set DBQ_S3_BUCKET")
            }
            print("dbq bench clients — \(runs) runs each, medians; peak RSS is of this process")

            let redis = try await RedisConnection.connect(redisConfiguration, logger: logger)
            let unpipelined = try await median(runs) {
                let started = ContinuousClock.now
                for i in 0..<redisCommands { try await redis.send("SET", "dbq:bench:k", RedisArgument(i)) }
                return Double(redisCommands) / (ContinuousClock.now - started).seconds
            }
            print(String(format: "redis     unpipelined   %10.0f commands/s (SET, one connection)", unpipelined))
            let batch = 16
            let pipelined = try await median(runs) {
                let commands = (0..<batch).map { RedisCommand("SET", "dbq:bench:k", RedisArgument($0)) }
                let started = ContinuousClock.now
                for _ in 0..<(redisCommands * 5 / batch) { _ = try await redis.pipeline(commands) }
                return Double(redisCommands * 5 / batch * batch) / (ContinuousClock.now - started).seconds
            }
            print(String(format: "redis     pipelined %2d  %10.0f commands/s", batch, pipelined))
            let deep = try await median(runs) {
                let commands = (0..<1000).map { RedisCommand("SET", "dbq:bench:k", RedisArgument($0)) }
                let started = ContinuousClock.now
                for _ in 0..<(redisCommands * 10 / 1000) { _ = try await redis.pipeline(commands) }
                return Double(redisCommands * 10) / (ContinuousClock.now - started).seconds
            }
            print(String(format: "redis     pipelined 1000%10.0f commands/s", deep))
            try await redis.send("DEL", "dbq:bench:k")

            let postgres = try await PostgresConnection.connect(databaseURL, logger: logger)
            var present = try await postgres.query("SELECT count(*) FROM pg_class WHERE relname = 'dbq_bench_copy'").scalar != "0"
            if present {
                present = try await postgres.query("SELECT count(*) FROM dbq_bench_copy").scalar.flatMap(Int.init) == copyRows
            }
            if !present {
                print("          (creating dbq_bench_copy with \(copyRows) rows)")
                try await postgres.execute("""
                    DROP TABLE IF EXISTS dbq_bench_copy;
                    CREATE TABLE dbq_bench_copy AS
                      SELECT i AS id, i % 1000 AS bucket, md5(i::text) AS a, md5((i * 7)::text) AS b, now() AS at
                      FROM generate_series(1, \(copyRows)) AS i;
                    """)
            }
            var copyBytes = 0
            let copyRate = try await median(runs) {
                var bytes = 0
                let started = ContinuousClock.now
                for try await chunk in postgres.copyOut("COPY dbq_bench_copy TO STDOUT") { bytes += chunk.count }
                copyBytes = bytes
                return Double(bytes) / 1e6 / (ContinuousClock.now - started).seconds
            }
            print(String(format: "postgres  COPY TO       %10.1f MB/s (%@, %d rows)", copyRate, formatBytes(Int64(copyBytes)), copyRows))

            let store = try StorageURL(s3URL).open(options: s3.s3Options(), logger: logger)
            let bytes = uploadMiB << 20
            let uploadRate = try await median(runs) {
                let started = ContinuousClock.now
                let info = try await store.put("upload.bin", from: ByteStream.pattern(count: bytes, chunkSize: 1 << 20, seed: 7))
                guard info.size == Int64(bytes) else { throw CheckFailure("uploaded \(info.size) of \(bytes) bytes") }
                return Double(bytes) / 1e6 / (ContinuousClock.now - started).seconds
            }
            try await store.delete("upload.bin")
            print(String(format: "s3        upload        %10.1f MB/s (%d MiB stream of random bytes, parts of %d MiB, %d in flight)",
                         uploadRate, uploadMiB, s3.partSizeMiB, s3.partConcurrency))
            print("peak RSS  \(formatBytes(Int64(ProcessStats.peakResidentBytes() ?? 0)))")
        }
    }

    private func median(_ runs: Int, _ body: () async throws -> Double) async throws -> Double {
        var figures: [Double] = []
        for _ in 0..<max(1, runs) { figures.append(try await body()) }
        figures.sort()
        return figures[figures.count / 2]
    }
}
