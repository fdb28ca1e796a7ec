import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Indexes
import Logging
import PostgresClient
import Queue
import RedisClient
import RedisQueue

/// Index advice on a large catalog and workload, and an index build through the queue
/// beside psql's CREATE INDEX CONCURRENTLY.
struct BenchIndexes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "indexes",
        abstract: "Advice time on 200 tables and 1,000 statements; a create-index job through Redis beside psql -c 'CREATE INDEX CONCURRENTLY …'.",
        discussion: """
            Advice: dbq_bench_idx_<tables> (made once and reused; pg_stat_statements and HypoPG \
            created in it) holds --tables tables of 2,000 rows; five statement shapes per table \
            (filters, a range with a sort, a join, an update) run 10 times each after \
            resetting its pg_stat_statements: 1,000 distinct statements. Timed: 'dbq indexes advise \
            --json' as a process. Build: on dbq_bench_s<scale>_r0 (pgbench -i), --runs times in \
            rotating order, psql -c 'CREATE INDEX CONCURRENTLY bench_abalance ON \
            pgbench_accounts (abalance)' beside 'dbq push create-index' of the same index run \
            by a dbq worker process (push to success), the index dropped between runs. Medians; \
            needs Redis (DBQ_REDIS_URL). deploy/local/bench-indexes.sh runs this.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var redis: RedisOptions
    @Option(help: "Tables of the advice database.") var tables = 200
    @Option(help: "pgbench scale of the build database.") var scale = 50
    @Option(help: "Runs per figure.") var runs = 3

    func validate() throws {
        if tables < 1 || tables > 2000 { throw ValidationError("--tables must be from 1 to 2000") }
        if runs < 1 || runs > 99 { throw ValidationError("--runs must be from 1 to 99") }
    }

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let tools = try Tools(aws: nil)
            let adminURL = try PostgresConnectionString(try database.resolved())
            let admin = try await PostgresConnection.connect(adminURL.raw, logger: logger, applicationName: "dbq bench")
            defer { Task { await admin.close() } }
            let work = NSTemporaryDirectory() + "dbq-bench-indexes-\(getpid())"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let dbq = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

            // --- Advice ---
            let name = "dbq_bench_idx_\(tables)"
            let url = try PostgresConnectionString(adminURL.replacingDatabase(name))
            try await ensureBenchDatabase(name, marker: "dbq bench: \(tables) tables for index advice", admin: admin) {
                let c = try await PostgresConnection.connect(url.raw, logger: logger, applicationName: "dbq bench")
                _ = try await c.execute("""
                    CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE EXTENSION IF NOT EXISTS hypopg;
                    DO $$ BEGIN FOR i IN 1..\(tables) LOOP
                      EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, c text NOT NULL, created timestamptz NOT NULL)', i);
                      EXECUTE format('INSERT INTO t%s SELECT g, g %% 500, g %% 37, ''v'' || (g %% 900), timestamptz ''2026-01-01'' + g * interval ''1 hour'' FROM generate_series(1, 2000) g', i);
                    END LOOP; END $$;
                    ANALYZE;
                    """)
                await c.close()
            }
            let c = try await PostgresConnection.connect(url.raw, logger: logger, applicationName: "dbq bench workload")
            _ = try await c.query("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
            for i in 1...tables {
                let next = i % tables + 1
                let shapes: [(String, [String])] = [
                    ("SELECT * FROM t\(i) WHERE a = $1", ["7"]),
                    ("SELECT id FROM t\(i) WHERE b = $1 AND created > $2 ORDER BY created", ["5", "2026-02-01"]),
                    ("SELECT * FROM t\(i) WHERE c = $1 ORDER BY created LIMIT 10", ["v42"]),
                    ("SELECT x.id FROM t\(i) x JOIN t\(next) y ON y.a = x.b WHERE x.c = $1", ["v7"]),
                    ("UPDATE t\(i) SET created = created WHERE c = $1 AND b = $2", ["v1", "1"]),
                ]
                for (sql, parameters) in shapes {
                    for _ in 0..<10 { _ = try await c.query(sql, parameters.map { PostgresParameter($0) }) }
                }
            }
            let distinct = try await c.query("SELECT count(*) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND calls >= 10").scalar ?? "?"
            await c.close()
            let config = work + "/dbq.yaml"
            let build = try PostgresConnectionString(adminURL.replacingDatabase("dbq_bench_s\(scale)_r0"))
            try "databases:\n  advice: \"\(url.raw)\"\n  source: \"\(build.raw)\"\n".write(toFile: config, atomically: true, encoding: .utf8)
            var env = ProcessInfo.processInfo.environment
            env["DBQ_CONFIG"] = config
            env["DBQ_LOG_LEVEL"] = "error"
            var adviceSeconds: [Double] = []
            var findings = "?"
            for _ in 0..<runs {
                let started = ContinuousClock.now
                let process = try Subprocess(dbq, arguments: ["indexes", "advise", "--database", "advice", "--json"], environment: env, pipeStdout: true)
                let output = try await Task.detached { () throws -> [UInt8] in
                    var all: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 1 << 16)
                    while true {
                        let n = try buffer.withUnsafeMutableBytes { try process.readStdout(into: $0) }
                        if n == 0 { return all }
                        all += buffer[0..<n]
                    }
                }.value
                guard await process.wait() == 0 else { throw CheckFailure("dbq indexes advise failed: \(process.standardError)") }
                adviceSeconds.append((ContinuousClock.now - started).seconds)
                if let report = try? JSONDecoder().decode(IndexAdvice.self, from: Data(output)) {
                    findings = "\(report.findings.filter { $0.kind == .missing }.count) missing-index recommendations, \(report.findings.count) findings"
                }
            }
            emit("dbq bench indexes — \(runs) run(s) each, medians")
            emit("")
            emit(String(format: "advice: %d tables, %@ statements of ≥ 10 calls: %.2f s (%@)", tables, distinct, median(adviceSeconds), findings))

            // --- Build through the queue beside psql ---
            _ = try await preparePgbench(scale: scale, admin: admin, adminURL: adminURL, tools: tools, logger: logger)
            let redisURL = try redis.url ?? environment("DBQ_REDIS_URL") ?? redis.configuration().url
            env["DBQ_REDIS_URL"] = redisURL
            let queueName = "bench-indexes-\(getpid())"
            let worker = try Subprocess(dbq, arguments: ["worker", "--config", config, "--queues", queueName, "--concurrency", "1"], environment: env)
            defer { if worker.isRunning { worker.kill(SIGTERM); _ = worker.waitBlocking() } }
            let queue = RedisQueue(configuration: try RedisConfiguration(url: redisURL), logger: logger, connections: 1)
            let (conninfo, pgEnvironment) = build.childProcessArguments()
            let psqlEnv = ProcessInfo.processInfo.environment.merging(pgEnvironment) { $1 }
            let dropSQL = "DROP INDEX IF EXISTS bench_abalance"
            let steps = ["psql", "dbq"]
            var samples: [String: [Double]] = [:]
            for run in 0..<runs {
                for i in 0..<steps.count {
                    let step = steps[(i + run) % steps.count]
                    _ = try await tools.timed("psql drop", work: work, environment: psqlEnv, [tools.psql, "-X", "-q", "--dbname=\(conninfo)", "-c", dropSQL])
                    if step == "psql" {
                        let (seconds, _) = try await tools.timed("psql CREATE INDEX CONCURRENTLY", work: work, environment: psqlEnv,
                                                                 [tools.psql, "-X", "-q", "--dbname=\(conninfo)", "-c", "CREATE INDEX CONCURRENTLY bench_abalance ON pgbench_accounts (abalance)"])
                        samples["psql", default: []].append(seconds)
                    } else {
                        let payload = try JSONValue(json: String(decoding: try JSONEncoder().encode(
                            CreateIndexJob.Payload(database: "source", table: "pgbench_accounts", columns: ["abalance"], name: "bench_abalance")), as: UTF8.self))
                        let envelope = JobEnvelope(kind: CreateIndexJob.kind, version: 1, payload: payload, queue: queueName, maxAttempts: 1, timeoutSeconds: 3600)
                        let started = ContinuousClock.now
                        let id = try await queue.push(envelope).id
                        while true {
                            guard let record = try await queue.job(id, queue: queueName) else { throw CheckFailure("bench job \(id) vanished") }
                            if record.state == "succeeded" { break }
                            if ["dead", "cancelled"].contains(record.state) { throw CheckFailure("the bench build failed: \(record.error ?? record.state)") }
                            try await Task.sleep(for: .milliseconds(10))
                        }
                        samples["dbq", default: []].append((ContinuousClock.now - started).seconds)
                    }
                }
            }
            _ = try await tools.timed("psql drop", work: work, environment: psqlEnv, [tools.psql, "-X", "-q", "--dbname=\(conninfo)", "-c", dropSQL])
            let admin2 = try await RedisConnection.connect(try RedisConfiguration(url: redisURL), logger: logger)
            try await removeBenchQueue(queueName, driver: queue)
            let psql = median(samples["psql"]!), dbqTime = median(samples["dbq"]!)
            emit(String(format: "build on dbq_bench_s%d_r0 (pgbench_accounts.abalance): psql CREATE INDEX CONCURRENTLY %.2f s, dbq create-index through the queue %.2f s", scale, psql, dbqTime))
            emit("")
            emit("targets: advice ≤ 10 s; build ≥ 0.95× psql's speed")
            emit(String(format: "  advice %.2f s %@, build %.2f× %@", median(adviceSeconds), median(adviceSeconds) <= 10 ? "(met)" : "(MISSED)",
                        psql / dbqTime, psql / dbqTime >= 0.95 ? "(met)" : "(MISSED)"))
        }
    }
}
