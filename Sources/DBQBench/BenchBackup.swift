import ArgumentParser
import Backups
import Codecs
import DatabaseJobs
import DBQCommand
import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import Queue
import RedisClient
import RedisQueue

/// Backup throughput and worker memory at several database sizes, beside the tools
/// people use for the same thing, on the same servers in the same run.
struct BenchBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Backup MB/s and worker peak RSS beside pg_dump -Fc > file and pg_dump -Fc | aws s3 cp -.",
        discussion: """
            For each --scale: a database made by pgbench -i at that scale plus a table of \
            incompressible bytea (--random-mib-per-scale MiB per unit of scale; pgbench's data \
            alone compresses about 100×), named dbq_bench_s<scale>_r<MiB>, made once and reused. \
            Then, --runs times in rotating order: pg_dump -Fc --compress=0 > file (the raw dump: \
            the limit), pg_dump -Fc > file, pg_dump -Fc | aws s3 cp -, and dbq backups (zstd) \
            pushed through Redis to real worker processes: one writing to a local directory, one \
            to S3, one to S3 in objects of 20 parts (each committed while the next streams). MB/s is the database's size (pg_database_size) over \
            the wall time, median of the runs (a dbq backup is timed from its push to its \
            success). Peak RSS is the dbq worker process's (VmHWM, over all runs at that size) \
            and, for the others, their largest process's. Then the S3 server's floors, --runs \
            times: the raw dump while the same bytes a dbq backup stored are uploaded from a \
            file, and the same with zstd -1 compressing a raw dump beside them; a backup to that \
            server does at least all of it. Last, one S3 backup is verified \
            (restored into a scratch database, rows compared): its seconds and the worker's \
            peak during it. deploy/local/bench-backup.sh installs \
            the aws CLI and runs this against the local services.
            """)

    @OptionGroup var redis: RedisOptions
    @OptionGroup var database: DatabaseOptions

    @Option(help: "S3 URL the S3 figures write under (default: s3://$DBQ_S3_BUCKET/dbq-bench).")
    var s3URL: String?

    @OptionGroup var s3: S3OptionGroup

    @Option(parsing: .upToNextOption, help: "pgbench scales to measure (100,000 accounts each).")
    var scale: [Int] = [10, 50]

    @Option(name: .customLong("random-mib-per-scale"), help: "MiB of incompressible bytea per unit of scale (0: pgbench's data alone).")
    var randomMiBPerScale = 2

    @Option(help: "Runs per figure.")
    var runs = 3

    @Option(help: "zstd level of the dbq backups (default: the codec's default).")
    var level: Int?

    @Option(help: "PID of the S3 server, to report the CPU it spends per dbq backup (deploy/local/bench-backup.sh passes moto's).")
    var s3ServerPid: Int32?

    @Option(help: "The aws CLI, for the peer pipeline.")
    var aws = "aws"

    @Option(help: "Directory for pg_dump's file and dbq's local store (default: a new temporary directory, removed at the end).")
    var workDirectory: String?

    @Flag(help: "Drop the bench databases at the end (default: kept, so the next run starts at once).")
    var dropDatabases = false

    func validate() throws {
        if scale.isEmpty || scale.contains(where: { $0 < 1 || $0 > 10_000 }) { throw ValidationError("--scale takes pgbench scales from 1 to 10000") }
        if randomMiBPerScale < 0 || randomMiBPerScale > 1024 { throw ValidationError("--random-mib-per-scale must be from 0 to 1024") }
        if runs < 1 || runs > 99 { throw ValidationError("--runs must be from 1 to 99") }
    }

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let tools = try Tools(aws: aws)
            _ = try tools.requireZstd()
            let redisURL = try redis.url ?? environment("DBQ_REDIS_URL") ?? redis.configuration().url
            let adminURL = try PostgresConnectionString(try database.resolved())
            guard let s3URL = s3URL ?? environment("DBQ_S3_BUCKET").map({ "s3://\($0)/dbq-bench" }) else {
                throw ValidationError("pass --s3-url or set DBQ_S3_BUCKET")
            }
            let s3Options = try s3.s3Options()
            let s3Store = try StorageURL(s3URL).open(options: s3Options, logger: logger)
            let queue = RedisQueue(configuration: try redis.configuration(), logger: logger, connections: 1)
            try await queue.checkServer()

            let ownDirectory = workDirectory == nil
            let work = try workDirectory ?? Self.makeTemporaryDirectory()
            defer { if ownDirectory { try? FileManager.default.removeItem(atPath: work) } }
            try FileManager.default.createDirectory(atPath: work + "/store", withIntermediateDirectories: true)
            let localStore = try StorageURL("file://" + work + "/store").open(options: s3Options, logger: logger)
            // The encrypted store's objects as stored (the worker encrypts; sizes and removal are of the stored bytes).
            let encryptedStore = try StorageURL("file://" + work + "/store-encrypted").open(options: s3Options, logger: logger)

            emit("dbq bench backup — \(runs) run(s) each, medians; MB/s = database size / wall time")
            emit("S3: \(s3URL) at \(s3Options.endpoint ?? "AWS"), parts of \(s3Options.partSize >> 20) MiB (\(S3Options().partConcurrency) held: uploading or filling); dbq codec zstd level \(level ?? Codec.zstd.defaultLevel)")

            let admin = try await PostgresConnection.connect(adminURL.raw, logger: logger, applicationName: "dbq bench")
            var databases: [BenchDatabase] = []
            for scale in scale {
                databases.append(try await prepare(scale: scale, admin: admin, adminURL: adminURL, tools: tools, logger: logger))
            }
            let config = try writeWorkerConfiguration(work: work, s3URL: s3URL, options: s3Options)

            var results: [(BenchDatabase, [Peer: Figures])] = []
            for db in databases {
                results.append((db, try await measure(db, tools: tools, config: config, redisURL: redisURL, work: work,
                                                       queue: queue, s3Store: s3Store, localStore: localStore, encryptedStore: encryptedStore, s3URL: s3URL,
                                                       s3Options: s3Options)))
            }
            printTargets(results)

            if dropDatabases {
                for db in databases { _ = try await admin.execute("DROP DATABASE IF EXISTS \(try PostgresIdentifier.quoted(db.name)) WITH (FORCE)") }
            }
            await admin.close()
        }
    }

    // MARK: - The databases

    struct BenchDatabase {
        let name: String
        let scale: Int
        let randomMiB: Int
        let url: PostgresConnectionString
        var bytes: Int64 = 0
    }

    /// Makes (or reuses) the database for `scale`. The marker comment is set last, so a
    /// database whose making was interrupted is made again, never measured half-made.
    private func prepare(scale: Int, admin: PostgresConnection, adminURL: PostgresConnectionString, tools: Tools,
                         logger: Logger) async throws -> BenchDatabase {
        let randomMiB = scale * randomMiBPerScale
        let name = "dbq_bench_s\(scale)_r\(randomMiB)"
        let marker = "dbq bench: pgbench scale \(scale), \(randomMiB) MiB of random bytea"
        let quoted = try PostgresIdentifier.quoted(name)
        var db = BenchDatabase(name: name, scale: scale, randomMiB: randomMiB,
                               url: try PostgresConnectionString(adminURL.replacingDatabase(name)))
        let comment = try await admin.query(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", [PostgresParameter(name)]).first?[0]
        if comment != marker {
            stderrLine("making \(name): pgbench -i -s \(scale) and \(randomMiB) MiB of random bytea …")
            _ = try await admin.execute("DROP DATABASE IF EXISTS \(quoted) WITH (FORCE)")
            _ = try await admin.execute("CREATE DATABASE \(quoted)")
            let (conninfo, childEnvironment) = db.url.childProcessArguments()
            let pgbench = try Subprocess(tools.pgbench, arguments: ["-i", "-q", "-s", String(scale), conninfo],
                                         environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 })
            let status = await pgbench.wait()
            guard status == 0 else { throw CheckFailure("pgbench -i -s \(scale) failed (exit \(status)): \(pgbench.standardError)") }
            if randomMiB > 0 {
                let connection = try await PostgresConnection.connect(db.url.raw, logger: logger, applicationName: "dbq bench")
                // 64 KiB rows of MD5 output: incompressible, stored uncompressed (EXTERNAL).
                _ = try await connection.execute("""
                    CREATE TABLE bench_random (id int PRIMARY KEY, data bytea);
                    ALTER TABLE bench_random ALTER COLUMN data SET STORAGE EXTERNAL;
                    INSERT INTO bench_random
                      SELECT i, (SELECT string_agg(decode(md5(i::text || ':' || j::text), 'hex'), ''::bytea) FROM generate_series(1, 4096) AS j)
                      FROM generate_series(1, \(randomMiB * 16)) AS i;
                    """)
                _ = try await connection.execute("VACUUM ANALYZE bench_random")
                await connection.close()
            }
            _ = try await admin.execute("COMMENT ON DATABASE \(quoted) IS '\(marker)'")
        }
        db.bytes = try await admin.query("SELECT pg_database_size($1)", [PostgresParameter(name)]).scalar.flatMap { Int64($0) } ?? 0
        return db
    }

    // MARK: - Measuring

    enum Peer: Int, CaseIterable {
        case rawDump, pgDumpFile, awsPipeline, dbqLocal, dbqLocalEncrypted, dbqS3, dbqS3Objects

        var label: String {
            switch self {
            case .rawDump: "pg_dump -Fc -Z0 > file (limit)"
            case .pgDumpFile: "pg_dump -Fc > file"
            case .awsPipeline: "pg_dump -Fc | aws s3 cp -"
            case .dbqLocal: "dbq backup → local directory"
            case .dbqLocalEncrypted: "the same, encrypted (AES-GCM)"
            case .dbqS3: "dbq backup → S3"
            case .dbqS3Objects: "dbq backup → S3, \(BenchBackup.objectParts)-part objects"
            }
        }
    }

    struct Sample {
        var seconds: Double
        var outputBytes: Int64
        var peakRSS: Int?
        var rawBytes: Int64?
        /// CPU seconds of the dbq worker, of the S3 server, during this backup.
        var workerCPU: Double?
        var serverCPU: Double?
        /// The backup's first object, when it was kept.
        var key: String?
    }

    struct Figures {
        var samples: [Sample] = []
        /// The worker's VmHWM over all runs, and right after it started.
        var workerPeak: Int?
        var workerIdle: Int?
        /// The largest peak of a pg_dump the worker ran.
        var childPeak: Int?
        /// On the raw dump's figures: its median seconds with an S3 upload beside it, and with
        /// an upload and zstd beside it (see `serverFloor`).
        var floors: (upload: Double, compressing: Double)?

        var medianSeconds: Double { median(samples.map(\.seconds)) }
        /// The worker's and its pg_dump's together (the others' figures cover their whole pipeline's largest process).
        var peakRSS: Int? { workerPeak.map { $0 + (childPeak ?? 0) } ?? samples.compactMap(\.peakRSS).max() }
    }

    private func measure(_ db: BenchDatabase, tools: Tools, config: String, redisURL: String, work: String,
                         queue: RedisQueue, s3Store: any ObjectStore, localStore: any ObjectStore, encryptedStore: any ObjectStore, s3URL: String,
                         s3Options: S3Options) async throws -> [Peer: Figures] {
        let (conninfo, childEnvironment) = db.url.childProcessArguments()
        let env = ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 }

        // Warm the page cache once so that the first measured run is not the cold one.
        let warm = try Subprocess(tools.pgDump, arguments: ["-Fc", "--compress=0", "--no-password", "--dbname=\(conninfo)"], environment: env)
        guard await warm.wait() == 0 else { throw CheckFailure("pg_dump of \(db.name) failed: \(warm.standardError)") }

        var figures: [Peer: Figures] = [:]
        var workers: [Peer: BenchWorker] = [:]
        defer { for worker in workers.values { worker.stop() } }
        for (peer, storage) in [(Peer.dbqLocal, "local"), (.dbqLocalEncrypted, "local-encrypted"), (.dbqS3, "s3"), (.dbqS3Objects, "s3-objects")] {
            let worker = try await BenchWorker.start(
                storage: storage, config: config, redisURL: redisURL, database: db, level: level,
                queueName: "dbq-bench-\(getpid())-\(storage)")
            workers[peer] = worker
            figures[peer, default: Figures()].workerIdle = worker.idlePeak
        }

        for run in 0..<runs {
            let order = Peer.allCases.indices.map { Peer.allCases[($0 + run) % Peer.allCases.count] }
            for peer in order {
                let sample: Sample
                switch peer {
                case .rawDump:
                    sample = try await dumpToFile(["-Fc", "--compress=0"], label: "pg_dump -Fc --compress=0 > file", tools: tools, work: work,
                                                  environment: env, conninfo: conninfo)
                case .pgDumpFile:
                    sample = try await dumpToFile(["-Fc"], label: "pg_dump -Fc > file", tools: tools, work: work, environment: env, conninfo: conninfo)
                case .awsPipeline:
                    let key = "aws-\(db.name).dump"
                    var awsArguments = [tools.aws]
                    if let endpoint = s3Options.endpoint { awsArguments += ["--endpoint-url", endpoint] }
                    let script = #"set -o pipefail; pg="$1" conn="$2" target="$3"; shift 3; "$pg" -Fc --no-password --dbname="$conn" | "$@" s3 cp - "$target" --only-show-errors"#
                    var awsEnv = env
                    awsEnv["AWS_DEFAULT_REGION"] = s3Options.region
                    let (seconds, peak) = try await tools.timed(
                        "pg_dump -Fc | aws s3 cp -", work: work, environment: awsEnv,
                        ["/bin/bash", "-c", script, "bash", tools.pgDump, conninfo, s3URL + "/" + key] + awsArguments)
                    let size = try await s3Store.head(key)?.size ?? 0
                    try await s3Store.delete(key)
                    sample = Sample(seconds: seconds, outputBytes: size, peakRSS: peak)
                case .dbqLocal, .dbqLocalEncrypted, .dbqS3, .dbqS3Objects:
                    let serverBefore = s3ServerPid.flatMap(ProcessStats.cpuSeconds(pid:))
                    let store = peer == .dbqLocal ? localStore : peer == .dbqLocalEncrypted ? encryptedStore : s3Store
                    var s = try await workers[peer]!.backup(queue: queue, store: store)
                    if let serverBefore, let after = s3ServerPid.flatMap(ProcessStats.cpuSeconds(pid:)) { s.serverCPU = after - serverBefore }
                    sample = s
                }
                figures[peer, default: Figures()].samples.append(sample)
            }
        }
        for (peer, worker) in workers {
            figures[peer]?.workerPeak = worker.peak
            figures[peer]?.childPeak = worker.childPeak
        }
        let floor = try await serverFloor(worker: workers[.dbqLocal]!, queue: queue, localStore: localStore, s3Store: s3Store,
                                          tools: tools, work: work, environment: env, conninfo: conninfo)
        figures[.rawDump]?.floors = (floor.upload.seconds, floor.compressing.seconds)
        let verification = try await workers[.dbqS3]!.verify(queue: queue, store: s3Store)
        let redis = try await RedisConnection.connect(try RedisConfiguration(url: redisURL), logger: Logger(label: "dbq.bench"))
        for worker in workers.values {
            worker.stop()
            try await removeBenchQueue(worker.queueName, driver: queue)
        }
        workers = [:]

        let raw = figures[.dbqLocal]?.samples.first?.rawBytes ?? 0
        emit("")
        emit("pgbench scale \(db.scale) + \(db.randomMiB) MiB of random bytea (\(db.name)): database \(megabytes(db.bytes)), dump \(megabytes(raw)) uncompressed")
        emit("  " + pad("", 32) + lpad("seconds", 9) + lpad("MB/s", 9) + lpad("× pg_dump", 11) + lpad("× raw", 8) + lpad("output", 11) + lpad("peak RSS", 12))
        let reference = figures[.pgDumpFile]!.medianSeconds
        let limit = figures[.rawDump]!.medianSeconds
        for peer in Peer.allCases {
            let f = figures[peer]!
            let seconds = f.medianSeconds
            let note = switch peer {
            case .rawDump, .pgDumpFile: "pg_dump"
            case .awsPipeline: "largest process"
            case .dbqLocal, .dbqLocalEncrypted, .dbqS3, .dbqS3Objects: "worker \(mebibytes(f.workerPeak)) + pg_dump \(mebibytes(f.childPeak)); worker idle \(mebibytes(f.workerIdle))"
            }
            emit("  " + pad(peer.label, 32) + lpad(String(format: "%.2f", seconds), 9)
                  + lpad(String(format: "%.1f", Double(db.bytes) / 1e6 / seconds), 9)
                  + lpad(String(format: "%.2f", reference / seconds), 11)
                  + lpad(String(format: "%.2f", limit / seconds), 8)
                  + lpad(megabytes(median(f.samples.map { Double($0.outputBytes) }).int64), 11)
                  + lpad(mebibytes(f.peakRSS), 12) + "  (\(note))")
        }
        let spread = Peer.allCases.map { peer -> String in
            let s = figures[peer]!.samples.map(\.seconds)
            return String(format: "%.2f–%.2f", s.min() ?? 0, s.max() ?? 0)
        }
        emit("  runs' range (s): " + spread.joined(separator: ", "))
        let plainSeconds = figures[.dbqLocal]!.medianSeconds, encryptedSeconds = figures[.dbqLocalEncrypted]!.medianSeconds
        emit(String(format: "  encryption at rest costs %+.1f %% of the local backup's time (medians %.2f → %.2f s), worker peak %@ → %@; AES-NI: %@",
                    (encryptedSeconds / plainSeconds - 1) * 100, plainSeconds, encryptedSeconds, mebibytes(figures[.dbqLocal]!.workerPeak),
                    mebibytes(figures[.dbqLocalEncrypted]!.workerPeak),
                    ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" aes ") ?? false) ? "yes" : "no"))
        for peer in [Peer.dbqLocal, .dbqLocalEncrypted, .dbqS3, .dbqS3Objects] {
            let samples = figures[peer]!.samples
            var line = "  CPU per backup, \(peer.label): worker " + String(format: "%.2f s", median(samples.compactMap(\.workerCPU)))
            if peer != .dbqLocal, s3ServerPid != nil { line += String(format: ", S3 server %.2f s", median(samples.compactMap(\.serverCPU))) }
            emit(line + " (the raw dump's pg_dump: see its own run)")
        }
        emit("  " + pad("raw dump beside an S3 upload", 32) + lpad(String(format: "%.2f", floor.upload.seconds), 9)
             + String(format: "  (%.2f× raw; runs %@ s): the raw dump while dbq's S3 client uploads the same %@ from a file", limit / floor.upload.seconds,
                      floor.upload.range, megabytes(floor.bytes)))
        emit("  " + pad("  and zstd -1 beside them", 32) + lpad(String(format: "%.2f", floor.compressing.seconds), 9)
             + String(format: "  (%.2f× raw; runs %@ s): the same while zstd -1 compresses a raw dump from a file", limit / floor.compressing.seconds,
                      floor.compressing.range))
        emit("  " + pad("", 32) + "           a backup that streams to this S3 server does at least all of that: these are its floors here")
        emit("  " + pad("dbq verify-backup ← S3", 32) + lpad(String(format: "%.2f", verification.seconds), 9)
             + "  (one run: restore into a scratch database, rows compared)" + lpad(mebibytes(verification.peak), 11) + "  (worker, during it)")
        return figures
    }

    /// The raw dump run beside an upload of a dbq backup's stored bytes to the S3 server (the
    /// backup kept in the local store, read from its file), timed until both end, `runs`
    /// times: a backup to this server must do at least both (it cannot end its upload
    /// before its dump), so this is its floor here. Then the same with `zstd -1` compressing
    /// a raw dump from a file beside them: the floor of a backup that also compresses.
    /// Median seconds and range of each.
    private func serverFloor(worker: BenchWorker, queue: RedisQueue, localStore: any ObjectStore, s3Store: any ObjectStore,
                             tools: Tools, work: String, environment: [String: String],
                             conninfo: String) async throws -> (upload: Floor, compressing: Floor, bytes: Int64) {
        let zstdTool = try tools.requireZstd()
        let kept = try await worker.backup(queue: queue, store: localStore, keep: true)
        guard let key = kept.key else { throw CheckFailure("the bench backup succeeded without a key") }
        let source = work + "/floor-source.dump"
        defer { try? FileManager.default.removeItem(atPath: source) }
        _ = try await dumpToFile(["-Fc", "--compress=0"], label: "pg_dump -Fc --compress=0 > file", tools: tools, work: work,
                                 environment: environment, conninfo: conninfo, file: source, keep: true)
        var upload = Floor(), compressing = Floor()
        for run in 0..<runs {
            for withCompression in [false, true] {
                let probe = "dbq-bench-floor-\(getpid())-\(run)"
                let started = ContinuousClock.now
                async let copied = Self.copy(key, from: localStore, to: probe, in: s3Store)
                let zstd = withCompression ? try Subprocess("/bin/sh", arguments: ["-c", #"exec "$1" -1 -q -c "$2" > /dev/null"#, "sh", zstdTool, source],
                                                            environment: environment) : nil
                _ = try await dumpToFile(["-Fc", "--compress=0"], label: "pg_dump -Fc --compress=0 > file", tools: tools, work: work,
                                         environment: environment, conninfo: conninfo)
                _ = try await copied
                if let zstd, await zstd.wait() != 0 { throw CheckFailure("zstd -1 of the raw dump failed: \(zstd.standardError)") }
                let seconds = (ContinuousClock.now - started).seconds
                if withCompression { compressing.samples.append(seconds) } else { upload.samples.append(seconds) }
                try await s3Store.delete(probe)
            }
        }
        try await BenchWorker.remove(key, from: localStore)
        return (upload, compressing, kept.outputBytes)
    }

    struct Floor {
        var samples: [Double] = []
        var seconds: Double { median(samples) }
        var range: String { String(format: "%.2f–%.2f", samples.min() ?? 0, samples.max() ?? 0) }
    }

    private static func copy(_ key: String, from source: any ObjectStore, to target: String, in store: any ObjectStore) async throws -> ObjectInfo {
        try await store.put(target, from: try await source.get(key))
    }

    /// `pg_dump OPTIONS > file` under GNU time: seconds, output size, peak RSS.
    /// `keep`: the output is left at `file` (removed by default).
    private func dumpToFile(_ options: [String], label: String, tools: Tools, work: String, environment: [String: String],
                            conninfo: String, file: String? = nil, keep: Bool = false) async throws -> Sample {
        let file = file ?? work + "/pg_dump.dump"
        let (seconds, peak) = try await tools.timed(
            label, work: work, environment: environment,
            ["/bin/sh", "-c", #"out="$1" conn="$2"; shift 2; exec "$@" --no-password --dbname="$conn" > "$out""#, "sh", file, conninfo, tools.pgDump] + options)
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int64) ?? 0
        if !keep { try? FileManager.default.removeItem(atPath: file) }
        return Sample(seconds: seconds, outputBytes: size, peakRSS: peak)
    }

    private func printTargets(_ results: [(BenchDatabase, [Peer: Figures])]) {
        emit("")
        emit("targets: dbq → S3 at least the aws pipeline's speed, 0.9× pg_dump -Fc > file and 0.8× the raw dump's; worker peak RSS ≤ 64 MiB, about the same at every size")
        var peaks: [Int] = []
        for (db, f) in results {
            let s3 = f[.dbqS3]!.medianSeconds
            let vsAWS = f[.awsPipeline]!.medianSeconds / s3
            let vsFile = f[.pgDumpFile]!.medianSeconds / s3
            let vsRaw = f[.rawDump]!.medianSeconds / s3
            let peak = max(f[.dbqS3]!.workerPeak ?? 0, f[.dbqLocal]!.workerPeak ?? 0)
            let withChild = max(f[.dbqS3]!.peakRSS ?? 0, f[.dbqLocal]!.peakRSS ?? 0)
            peaks.append(peak)
            emit(String(format: "  scale %-4d dbq → S3: %.2f× the aws pipeline %@, %.2f× pg_dump > file %@, %.2f× the raw dump %@; worker peak %@ %@ (%@ with its pg_dump)",
                         db.scale, vsAWS, mark(vsAWS >= 1), vsFile, mark(vsFile >= 0.9), vsRaw, mark(vsRaw >= 0.8),
                         mebibytes(peak), mark(peak <= 64 << 20), mebibytes(withChild)))
            if let floors = f[.rawDump]!.floors {
                let raw = f[.rawDump]!.medianSeconds
                let objects = f[.dbqS3Objects]!.medianSeconds
                emit(String(format: "             against this S3 server on this machine no compressing backup can pass %.2f× the raw dump (%.2f× if compressing cost nothing);"
                             + " dbq reaches %.0f %% of that floor's speed as one object, %.0f %% in %d-part objects",
                             raw / floors.compressing, raw / floors.upload, floors.compressing / s3 * 100, floors.compressing / objects * 100, Self.objectParts))
            }
        }
        if let low = peaks.min(), let high = peaks.max(), low > 0 {
            emit(String(format: "  worker peak from the smallest to the largest database: %@ → %@ (%+.0f %%)",
                         mebibytes(low), mebibytes(high), (Double(high) / Double(low) - 1) * 100))
        }
    }

    private func mark(_ ok: Bool) -> String { ok ? "(met)" : "(MISSED)" }

    /// Parts per object of the third dbq figure: a backup of several objects, each
    /// committed while the next streams.
    static let objectParts = 20

    private func writeWorkerConfiguration(work: String, s3URL: String, options: S3Options) throws -> String {
        // JSON is YAML: no quoting rules to get wrong. No secrets: keys come from the environment.
        var s3Entry: [String: Any] = ["url": s3URL, "region": options.region, "part_size_mib": options.partSize >> 20]
        if let endpoint = options.endpoint { s3Entry["endpoint"] = endpoint }
        if let addressing = options.addressing { s3Entry["addressing"] = addressing.rawValue }
        var objectsEntry = s3Entry
        objectsEntry["parts_per_object"] = Self.objectParts
        let encrypted: [String: Any] = ["url": "file://" + work + "/store-encrypted", "encryption": ["key_env": BenchWorker.encryptionKeyEnv]]
        let document: [String: Any] = ["storages": ["local": "file://" + work + "/store", "local-encrypted": encrypted, "s3": s3Entry, "s3-objects": objectsEntry]]
        let path = work + "/dbq.yaml"
        try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        return path
    }

    private static func makeTemporaryDirectory() throws -> String {
        let base = environment("TMPDIR") ?? "/tmp"
        let path = "\(base)/dbq-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// The external programs the benches run, found before anything is made.
struct Tools {
    let pgDump: String
    let pgbench: String
    let psql: String
    let aws: String
    let time: String
    /// The zstd tool, if installed (only `bench backup` needs it).
    let zstd: String?

    /// `aws`: the aws CLI, or nil when the bench does not use it.
    init(aws: String?) throws {
        func find(_ name: String, _ advice: String) throws -> String {
            guard let path = Subprocess.locate(name) else { throw CheckFailure("'\(name)' was not found (PATH: \(environment("PATH") ?? "")); \(advice)") }
            return path
        }
        pgDump = try find(environment("DBQ_PG_DUMP") ?? "pg_dump", "install PostgreSQL's client tools (deploy/local/install.sh) or set DBQ_PG_DUMP")
        pgbench = try find("pgbench", "it comes with PostgreSQL (deploy/local/install.sh installs it)")
        psql = try find("psql", "it comes with PostgreSQL (deploy/local/install.sh installs it)")
        self.aws = try aws.map { try find($0, "install the aws CLI (python3 -m pip install awscli; deploy/local/bench-backup.sh does) or pass --aws PATH") } ?? ""
        time = try find("/usr/bin/time", "install GNU time (apt-get install time; deploy/local/install.sh does)")
        zstd = Subprocess.locate("zstd")
    }

    /// The zstd tool, or a message saying how to get it.
    func requireZstd() throws -> String {
        guard let zstd else {
            throw CheckFailure("'zstd' was not found (PATH: \(environment("PATH") ?? "")); install the zstd tool (apt-get install zstd; deploy/local/install.sh does)")
        }
        return zstd
    }

    /// Runs `command` under GNU time: wall seconds and the peak RSS of its largest process.
    /// Not `wait4` here: posix_spawn starts children with the parent's memory map until
    /// they exec, and Linux counts that map's peak (this process's) in the child's
    /// `ru_maxrss`; GNU time forks from its own small process instead.
    func timed(_ label: String, work: String, environment: [String: String], _ command: [String]) async throws -> (Double, Int?) {
        let report = work + "/time.txt"
        let started = ContinuousClock.now
        let process = try Subprocess(time, arguments: ["-f", "%M", "-o", report] + command, environment: environment)
        let status = await process.wait()
        let seconds = (ContinuousClock.now - started).seconds
        guard status == 0 else { throw CheckFailure("\(label) failed (exit \(status)): \(process.standardError)") }
        let text = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
        let kib = text.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return (seconds, kib.map { $0 * 1024 })
    }
}

/// A `dbq worker` process serving one queue, for one storage.
private final class BenchWorker {
    static let encryptionKeyEnv = "DBQ_BENCH_ENCRYPTION_KEY"
    /// A key made for this run: the encrypted local store's.
    static let encryptionKey = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    let process: Subprocess
    let queueName: String
    let database: BenchBackup.BenchDatabase
    let storage: String
    private(set) var idlePeak: Int?
    /// The largest peak RSS seen of a child (pg_dump, pg_restore) of this worker.
    private(set) var childPeak: Int?
    private var lastChildScan = ContinuousClock.now

    let level: Int?

    private init(process: Subprocess, queueName: String, database: BenchBackup.BenchDatabase, storage: String, level: Int?) {
        self.level = level
        self.process = process
        self.queueName = queueName
        self.database = database
        self.storage = storage
    }

    static func start(storage: String, config: String, redisURL: String, database: BenchBackup.BenchDatabase, level: Int?,
                      queueName: String) async throws -> BenchWorker {
        var env = ProcessInfo.processInfo.environment
        env["DBQ_LOG_LEVEL"] = "error"
        env[encryptionKeyEnv] = encryptionKey
        env["DBQ_CONFIG"] = config
        env["DBQ_REDIS_URL"] = redisURL
        env["DBQ_DATABASE_URL_" + database.name.uppercased()] = database.url.raw
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let process = try Subprocess(executable, arguments: ["worker", "--config", config, "--queues", queueName, "--concurrency", "1",
                                                             "--id", "bench-\(storage)-\(getpid())"], environment: env)
        let worker = BenchWorker(process: process, queueName: queueName, database: database, storage: storage, level: level)
        try await Task.sleep(for: .milliseconds(1500))
        worker.idlePeak = ProcessStats.peakResidentBytes(pid: process.pid)
        guard worker.idlePeak != nil else {
            _ = await process.wait()
            throw CheckFailure("the bench worker exited at once: \(process.standardError)")
        }
        return worker
    }

    /// One backup through Redis: pushed, run by this worker, timed to its success, then
    /// removed from the store (the bench keeps nothing) unless `keep`.
    func backup(queue: RedisQueue, store: any ObjectStore, keep: Bool = false) async throws -> BenchBackup.Sample {
        let cpuBefore = ProcessStats.cpuSeconds(pid: process.pid)
        let (seconds, result) = try await run("backup", queue: queue)
        let cpu = cpuBefore.flatMap { before in ProcessStats.cpuSeconds(pid: process.pid).map { $0 - before } }
        guard case .string(let key)? = result["key"], case .number(let size)? = result["size"], case .number(let raw)? = result["rawSize"] else {
            throw CheckFailure("the bench backup succeeded without a result")
        }
        if !keep { try await Self.remove(key, from: store) }
        return BenchBackup.Sample(seconds: seconds, outputBytes: Int64(size), peakRSS: nil, rawBytes: Int64(raw), workerCPU: cpu,
                                  key: keep ? key : nil)
    }

    /// A backup kept, then verified (restored into a scratch database, tables and rows
    /// compared): the verification's seconds and the worker's peak RSS during it alone.
    func verify(queue: RedisQueue, store: any ObjectStore) async throws -> (seconds: Double, peak: Int?) {
        let backup = try await run("backup", queue: queue).result
        guard case .string(let key)? = backup["key"] else { throw CheckFailure("the bench backup succeeded without a result") }
        // Writing 5 to clear_refs resets the peak (VmHWM) to the present RSS.
        try? "5".write(toFile: "/proc/\(process.pid)/clear_refs", atomically: false, encoding: .utf8)
        let (seconds, result) = try await run("verify-backup", queue: queue)
        let peak = self.peak
        try await Self.remove(key, from: store)
        guard case .string("passed")? = result["outcome"] else { throw CheckFailure("the bench verification did not pass: \(result)") }
        return (seconds, peak)
    }

    private func run(_ kind: String, queue: RedisQueue) async throws -> (seconds: Double, result: [String: JSONValue]) {
        var fields: [String: JSONValue] = ["database": .string(database.name), "storage": .string(storage)]
        if kind == "backup", let level { fields["level"] = .number(Double(level)) }
        let payload = JSONValue.object(fields)
        let version = Kinds.registry.defaults(for: kind)?.version ?? 1
        let envelope = JobEnvelope(kind: kind, version: version, payload: payload, queue: queueName, maxAttempts: 1, timeoutSeconds: 3600)
        let started = ContinuousClock.now
        let id = try await queue.push(envelope).id
        while true {
            guard let record = try await queue.job(id, queue: queueName) else { throw CheckFailure("bench job \(id) vanished") }
            switch record.state {
            case "succeeded":
                let seconds = (ContinuousClock.now - started).seconds
                guard case .object(let result)? = record.result else { throw CheckFailure("bench job \(id) succeeded without a result") }
                return (seconds, result)
            case "dead", "cancelled":
                throw CheckFailure("the dbq \(kind) on \(storage) failed: \(record.error ?? record.state)")
            default:
                if !process.isRunning {
                    _ = await process.wait()
                    throw CheckFailure("the bench worker for \(storage) exited: \(process.standardError)")
                }
                // The worker's children (its pg_dump) every 100 ms: their peak counts with the worker's.
                if ContinuousClock.now - lastChildScan >= .milliseconds(100) {
                    lastChildScan = ContinuousClock.now
                    for child in ProcessStats.children(of: process.pid) {
                        if let peak = ProcessStats.peakResidentBytes(pid: child), peak > (childPeak ?? 0) { childPeak = peak }
                    }
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    /// A bench backup's objects: the dump's, its manifest, a verification if any.
    static func remove(_ dumpKey: String, from store: any ObjectStore) async throws {
        let folder = String(dumpKey[..<(dumpKey.lastIndex(of: "/") ?? dumpKey.endIndex)])
        for object in try await store.list(prefix: folder + "/") {
            try await store.delete(object.key)
        }
    }

    var peak: Int? { ProcessStats.peakResidentBytes(pid: process.pid) }

    func stop() {
        guard process.isRunning else { return }
        process.kill(SIGTERM)
        _ = process.waitBlocking()
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}


private extension Double {
    var int64: Int64 { isFinite ? Int64(self) : 0 }
}

/// A line on standard output, written at once: figures appear as they are measured, also
/// through a pipe (print would hold them in a buffer until the end).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
