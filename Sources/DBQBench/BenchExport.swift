import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Logging
import PostgresClient

/// Export and import throughput and memory beside `psql \copy`, on a generated table of
/// personal data and on pgbench's tables, in the same run on the same server.
struct BenchExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export and import MB/s and peak RSS beside psql \\copy, on a generated PII table and on pgbench.",
        discussion: """
            Two databases, made once and reused: dbq_bench_pii_<MiB> (one table of seven columns \
            — id, email, name, phone, city, born, note — about --pii-mib MiB as COPY text; the \
            note quotes an email and a phone number) and dbq_bench_s<scale>_r0 (pgbench -i). \
            Then, --runs times in rotating order: psql -c '\\copy TABLE to /dev/null' for every \
            table; 'dbq run export' without a policy (codec none and zstd); on the PII table, \
            'dbq run export' with three of the seven columns masked (name: hash, email: fake \
            email, note: redact); last, import: psql '\\copy TABLE from FILE' into emptied tables \
            beside 'dbq run import' of the raw export into the same emptied tables. MB/s is the COPY text's \
            size over the wall time; medians. Peak RSS is the dbq process's (VmHWM under GNU \
            time): 'dbq run' runs the job with the worker's code in one process. \
            deploy/local/bench-export.sh runs this against the local services.
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Size of the generated PII table as COPY text, in MiB.")
    var piiMib = 1024

    @Option(help: "pgbench scale of the second database (100,000 accounts each).")
    var scale = 50

    @Option(help: "Runs per figure.")
    var runs = 3

    @Option(help: "Directory for exports and COPY files (default: a new temporary directory, removed at the end).")
    var workDirectory: String?

    func validate() throws {
        if piiMib < 1 || piiMib > 100_000 { throw ValidationError("--pii-mib must be from 1 to 100000") }
        if scale < 1 || scale > 10_000 { throw ValidationError("--scale must be from 1 to 10000") }
        if runs < 1 || runs > 99 { throw ValidationError("--runs must be from 1 to 99") }
    }

    static let policy = """
        strict: true
        tables:
          public.people:
            id: keep
            email: {rule: fake, kind: email}
            name: hash
            phone: keep
            city: keep
            born: keep
            note: {rule: redact, email_length: 52}
        """

    typealias Database = BenchDatabase

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let tools = try Tools(aws: nil)
            let adminURL = try PostgresConnectionString(try database.resolved())
            let own = workDirectory == nil
            let work = try workDirectory ?? { () throws -> String in
                let path = NSTemporaryDirectory() + "dbq-bench-export-\(getpid())"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                return path
            }()
            defer { if own { try? FileManager.default.removeItem(atPath: work) } }
            do {
                try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            } catch {
                throw ValidationError("--work-directory \(work): cannot create it (\(error.localizedDescription)); give a writable directory")
            }
            let admin = try await PostgresConnection.connect(adminURL.raw, logger: logger, applicationName: "dbq bench")
            defer { Task { await admin.close() } }
            emit("dbq bench export — \(runs) run(s) each, medians; MB/s = the tables' COPY text / wall time")
            var results: [(Database, [String: (Double, Int?)])] = []
            for db in [try await preparePII(admin: admin, adminURL: adminURL, logger: logger),
                       try await preparePgbench(scale: scale, admin: admin, adminURL: adminURL, tools: tools, logger: logger)] {
                results.append((db, try await measure(db, admin: admin, adminURL: adminURL, tools: tools, work: work, logger: logger)))
            }
            emit("")
            emit("targets: raw export ≥ 0.9× raw COPY; anonymized (3 of 7 masked) ≥ 0.5× raw COPY; import ≥ 0.5× \\copy from; dbq peak ≤ 64 MiB and about equal at both sizes")
            var peaks: [Int] = []
            for (db, f) in results {
                let copy = f["copy"]!.0
                func ratio(_ key: String) -> Double { copy / f[key]!.0 }
                var line = String(format: "  %@: raw export %.2f× %@ (zstd %.2f×)", db.name, ratio("export-none"), mark(ratio("export-none") >= 0.9), ratio("export-zstd"))
                if let masked = f["export-masked"] { line += String(format: ", anonymized %.2f× %@", copy / masked.0, mark(copy / masked.0 >= 0.5)) }
                let importRatio = f["copy-from"]!.0 / f["import"]!.0
                line += String(format: ", import %.2f× %@", importRatio, mark(importRatio >= 0.5))
                let peak = f.filter { $0.key.hasPrefix("export") || $0.key == "import" }.compactMap(\.value.1).max() ?? 0
                peaks.append(peak)
                emit(line + "; dbq peak \(mebibytes(peak)) \(mark(peak <= 64 << 20))")
            }
            if let low = peaks.min(), let high = peaks.max(), low > 0 {
                emit(String(format: "  dbq peak from one database to the other: %@ → %@ (%+.0f %%)", mebibytes(low), mebibytes(high), Double(high - low) / Double(low) * 100))
            }
        }
    }

    private func mark(_ ok: Bool) -> String { ok ? "(met)" : "(MISSED)" }

    private func preparePII(admin: PostgresConnection, adminURL: PostgresConnectionString, logger: Logger) async throws -> Database {
        let name = "dbq_bench_pii_\(piiMib)"
        let url = try PostgresConnectionString(adminURL.replacingDatabase(name))
        // About 190 bytes of COPY text a row.
        let rows = Int64(piiMib) << 20 / 190
        try await ensureBenchDatabase(name, marker: "dbq bench: \(rows) PII rows", admin: admin) {
            let c = try await PostgresConnection.connect(url.raw, logger: logger, applicationName: "dbq bench")
            _ = try await c.execute("""
                CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL, name text, phone text, city text, born date, note text);
                INSERT INTO people SELECT i, 'person' || i || '@mail' || (i % 97) || '.example',
                       initcap(md5(i::text)::varchar(7)) || ' ' || initcap(md5((i + 1)::text)::varchar(9)),
                       '+49 30 ' || lpad((i % 10000000)::text, 7, '0'), 'City ' || (i % 5000), date '1940-01-01' + (i % 25000)::int,
                       'Ticket ' || i || ': customer wrote from person' || i || '@mail' || (i % 97) || '.example, call back on +49 30 ' || lpad((i % 10000000)::text, 7, '0') || ' please'
                  FROM generate_series(1, \(rows)) i;
                """)
            _ = try await c.execute("VACUUM ANALYZE people")
            await c.close()
        }
        return Database(name: name, url: url, tables: ["public.people"])
    }

    private func measure(_ source: Database, admin: PostgresConnection, adminURL: PostgresConnectionString, tools: Tools, work: String,
                         logger: Logger) async throws -> [String: (Double, Int?)] {
        var db = source
        let (conninfo, pgEnvironment) = db.url.childProcessArguments()
        var env = ProcessInfo.processInfo.environment.merging(pgEnvironment) { $1 }
        // The scratch database the imports load: the source's schema, emptied before each load.
        let scratch = db.name + "_import"
        let scratchURL = try PostgresConnectionString(adminURL.replacingDatabase(scratch))
        _ = try await admin.execute("DROP DATABASE IF EXISTS \(try PostgresIdentifier.quoted(scratch)) WITH (FORCE)")
        _ = try await admin.execute("CREATE DATABASE \(try PostgresIdentifier.quoted(scratch))")
        let store = work + "/store-" + db.name
        try? FileManager.default.removeItem(atPath: store)
        let config = work + "/dbq-\(db.name).yaml"
        try """
            databases:
              source: "\(db.url.raw)"
              scratch: "\(scratchURL.raw)"
            storages:
              archive:
                url: "file://\(store)"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        env["DBQ_CONFIG"] = config
        env["DBQ_LOG_LEVEL"] = "error"
        env["DBQ_ANONYMIZE_KEY"] = "dbq-bench-key-0123456789abcdef"
        let dbq = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

        // The COPY text files the \copy-from baseline loads, and the size MB/s is measured by.
        db.copyBytes = 0
        for table in db.tables {
            let file = work + "/\(table).copy"
            _ = try await tools.timed("psql \\copy to file", work: work, environment: env, [tools.psql, "-X", "-q", "--dbname=\(conninfo)", "-c", "\\copy \(table) to '\(file)'"])
            db.copyBytes += Int64((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
        emit("")
        emit(String(format: "%@: %@ as COPY text in %d table(s)", db.name, megabytes(db.copyBytes), db.tables.count))
        // The schema, once, for the \copy-from baseline and the imports.
        _ = try await tools.timed("dbq run export (schema)", work: work, environment: env, [dbq, "run", "export", "--database", "source", "--codec", "none"])
        _ = try await tools.timed("dbq run import --create-schema", work: work, environment: env,
                                  [dbq, "run", "import", "--database", "scratch", "--create-schema", "--mode", "replace"])
        let (scratchInfo, scratchEnvironment) = scratchURL.childProcessArguments()
        let scratchEnv = ProcessInfo.processInfo.environment.merging(scratchEnvironment) { $1 }

        var peers: [(String, String, [String], [String: String])] = [
            ("copy", "psql \\copy to /dev/null", [tools.psql, "-X", "-q", "--dbname=\(conninfo)"] + db.tables.flatMap { ["-c", "\\copy \($0) to '/dev/null'"] }, env),
            ("export-none", "dbq export, no policy, codec none", [dbq, "run", "export", "--database", "source", "--codec", "none"], env),
            ("export-zstd", "dbq export, no policy, zstd", [dbq, "run", "export", "--database", "source"], env),
        ]
        if db.tables == ["public.people"] {
            let policy = work + "/policy.yaml"
            try Self.policy.write(toFile: policy, atomically: true, encoding: .utf8)
            peers.append(("export-masked", "dbq export, 3 of 7 masked, none", [dbq, "run", "export", "--database", "source", "--codec", "none", "--policy", policy], env))
        }
        let truncate = "TRUNCATE " + db.tables.joined(separator: ", ")
        peers.append(("copy-from", "psql \\copy from file", [tools.psql, "-X", "-q", "--dbname=\(scratchInfo)", "-c", truncate]
                        + db.tables.flatMap { ["-c", "\\copy \($0) from '\(work)/\($0).copy'"] }, scratchEnv))
        var samples: [String: [(Double, Int?)]] = [:]
        for run in 0..<runs {
            for i in 0..<peers.count {
                let (key, label, command, environment) = peers[(i + run) % peers.count]
                if key.hasPrefix("export") { try? FileManager.default.removeItem(atPath: store + "/exports") }
                samples[key, default: []].append(try await tools.timed(label, work: work, environment: environment, command))
            }
            // The import loads the newest export: the raw one, made last here.
            try? FileManager.default.removeItem(atPath: store + "/exports")
            _ = try await tools.timed("dbq run export", work: work, environment: env, [dbq, "run", "export", "--database", "source", "--codec", "none"])
            // Emptied untimed (as TRUNCATE, like the baseline's), then loaded.
            _ = try await tools.timed("psql TRUNCATE", work: work, environment: scratchEnv, [tools.psql, "-X", "-q", "--dbname=\(scratchInfo)", "-c", truncate])
            samples["import", default: []].append(try await tools.timed("dbq run import", work: work, environment: env,
                                                                         [dbq, "run", "import", "--database", "scratch"]))
        }
        let labels = Dictionary(uniqueKeysWithValues: peers.map { ($0.0, $0.1) }).merging(["import": "dbq import (insert)"]) { a, _ in a }
        var figures: [String: (Double, Int?)] = [:]
        emit("  " + pad("", 36) + lpad("seconds", 9) + lpad("MB/s", 9) + lpad("× copy", 9) + lpad("peak RSS", 12))
        for key in ["copy", "export-none", "export-zstd", "export-masked", "copy-from", "import"] {
            guard let s = samples[key] else { continue }
            let seconds = median(s.map(\.0))
            let peak = s.compactMap(\.1).max()
            figures[key] = (seconds, peak)
            let base = key == "import" || key == "copy-from" ? figures["copy-from"]?.0 : figures["copy"]?.0
            emit("  " + pad(labels[key] ?? key, 36) + lpad(String(format: "%.2f", seconds), 9)
                 + lpad(String(format: "%.1f", Double(db.copyBytes) / 1e6 / seconds), 9)
                 + lpad(base.map { String(format: "%.2f×", $0 / seconds) } ?? "", 9) + lpad(mebibytes(peak), 12))
        }
        _ = try await admin.execute("DROP DATABASE IF EXISTS \(try PostgresIdentifier.quoted(scratch)) WITH (FORCE)")
        return figures
    }
}

/// A database a bench measures, made once and reused.
struct BenchDatabase {
    var name: String
    var url: PostgresConnectionString
    var tables: [String]
    /// The tables as COPY text, in bytes.
    var copyBytes: Int64 = 0
}

/// Makes (or reuses: the comment is set last) a database for a bench.
func ensureBenchDatabase(_ name: String, marker: String, admin: PostgresConnection, make: () async throws -> Void) async throws {
    let comment = try await admin.query("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                                        [PostgresParameter(name)]).first?[0]
    guard comment != marker else { return }
    stderrLine("making \(name) …")
    let quoted = try PostgresIdentifier.quoted(name)
    _ = try await admin.execute("DROP DATABASE IF EXISTS \(quoted) WITH (FORCE)")
    _ = try await admin.execute("CREATE DATABASE \(quoted)")
    try await make()
    _ = try await admin.execute("COMMENT ON DATABASE \(quoted) IS '\(marker)'")
}

/// pgbench -i at `scale`, under the name and marker of 'dbq bench backup' without random
/// bytea: one database serves the backup, export and snapshot benches.
func preparePgbench(scale: Int, admin: PostgresConnection, adminURL: PostgresConnectionString, tools: Tools, logger: Logger) async throws -> BenchDatabase {
    let name = "dbq_bench_s\(scale)_r0"
    let url = try PostgresConnectionString(adminURL.replacingDatabase(name))
    try await ensureBenchDatabase(name, marker: "dbq bench: pgbench scale \(scale), 0 MiB of random bytea", admin: admin) {
        let (conninfo, childEnvironment) = url.childProcessArguments()
        let pgbench = try Subprocess(tools.pgbench, arguments: ["-i", "-q", "-s", String(scale), conninfo],
                                     environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 })
        guard await pgbench.wait() == 0 else { throw CheckFailure("pgbench -i -s \(scale) failed: \(pgbench.standardError)") }
    }
    return BenchDatabase(name: name, url: url, tables: ["public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_history", "public.pgbench_tellers"])
}
