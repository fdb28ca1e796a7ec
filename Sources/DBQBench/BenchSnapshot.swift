import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Logging
import PostgresClient

/// Snapshot and rollback of one large table beside pg_dump -Fc -t and
/// pg_restore --single-transaction --clean, in one run on one server.
struct BenchSnapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Snapshot and rollback of pgbench_accounts beside pg_dump -Fc -t and pg_restore --single-transaction --clean.",
        discussion: """
            Uses dbq_bench_s<scale>_r0 (pgbench -i; made once and reused, shared with 'dbq bench \
            export' and 'dbq bench backup'). Then, --runs times in rotating order: \
            'pg_dump -Fc -t public.pgbench_accounts -f FILE' beside 'dbq run snapshot --tables \
            pgbench_accounts' into a local store (both write to the same disk); \
            'pg_restore --single-transaction --clean -d DB FILE' (drops and recreates the table, \
            its rows and its primary key) beside 'dbq run rollback --snapshot latest --confirm' \
            (locks, empties and reloads the table in one transaction). Medians; × is the \
            PostgreSQL tool's time over dbq's (above 1: dbq is faster). Peak RSS is the dbq \
            process's (VmHWM under GNU time). deploy/local/bench-snapshot.sh runs this against \
            the local services.
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(help: "pgbench scale (100,000 accounts each).")
    var scale = 50

    @Option(help: "Runs per figure.")
    var runs = 3

    func validate() throws {
        if scale < 1 || scale > 10_000 { throw ValidationError("--scale must be from 1 to 10000") }
        if runs < 1 || runs > 99 { throw ValidationError("--runs must be from 1 to 99") }
    }

    func run() async throws {
        try await reportingFailures {
            let logger = makeLogger("dbq.bench")
            let tools = try Tools(aws: nil)
            let pgRestore = environment("DBQ_PG_RESTORE") ?? "pg_restore"
            guard let restore = Subprocess.locate(pgRestore) else { throw CheckFailure("'\(pgRestore)' was not found; install PostgreSQL's client tools (deploy/local/install.sh)") }
            let adminURL = try PostgresConnectionString(try database.resolved())
            let work = NSTemporaryDirectory() + "dbq-bench-snapshot-\(getpid())"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let admin = try await PostgresConnection.connect(adminURL.raw, logger: logger, applicationName: "dbq bench")
            defer { Task { await admin.close() } }
            let db = try await preparePgbench(scale: scale, admin: admin, adminURL: adminURL, tools: tools, logger: logger)
            let table = "public.pgbench_accounts"
            let check = try await PostgresConnection.connect(db.url.raw, logger: logger, applicationName: "dbq bench")
            defer { Task { await check.close() } }
            let facts = try await check.query("SELECT count(*), pg_total_relation_size('\(table)') FROM \(table)")
            let rows = facts.first?[0] ?? "?"
            let size = Int64(facts.first?[1] ?? "0") ?? 0

            let (conninfo, pgEnvironment) = db.url.childProcessArguments()
            var env = ProcessInfo.processInfo.environment.merging(pgEnvironment) { $1 }
            let config = work + "/dbq.yaml"
            try """
                databases:
                  source: "\(db.url.raw)"
                storages:
                  archive:
                    url: "file://\(work)/store"
                """.write(toFile: config, atomically: true, encoding: .utf8)
            env["DBQ_CONFIG"] = config
            env["DBQ_LOG_LEVEL"] = "error"
            let dbq = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            let dump = work + "/accounts.dump"
            emit("dbq bench snapshot — \(db.name): \(table), \(rows) rows, \(megabytes(size)) with its index; \(runs) run(s) each, medians")
            // One snapshot first, so the first timed rollback has one to load.
            _ = try await tools.timed("dbq run snapshot", work: work, environment: env, [dbq, "run", "snapshot", "--database", "source", "--tables", table])
            _ = try await tools.timed("pg_dump -Fc -t", work: work, environment: env, [tools.pgDump, "-Fc", "-t", table, "-f", dump, conninfo])

            let steps: [(String, String, [String])] = [
                ("pg_dump", "pg_dump -Fc -t", [tools.pgDump, "-Fc", "-t", table, "-f", dump, conninfo]),
                ("snapshot", "dbq snapshot", [dbq, "run", "snapshot", "--database", "source", "--tables", table]),
                ("pg_restore", "pg_restore --single-transaction --clean", [restore, "--single-transaction", "--clean", "-d", conninfo, dump]),
                // Its result (stdout) says how long the table was locked.
                ("rollback", "dbq rollback --confirm",
                 ["/bin/sh", "-c", "exec \"$0\" \"$@\" > \(work)/rollback.json", dbq, "run", "rollback", "--database", "source", "--snapshot", "latest", "--confirm"]),
            ]
            var samples: [String: [(Double, Int?)]] = [:]
            var locked: [Double] = []
            for run in 0..<runs {
                for i in 0..<steps.count {
                    let (key, label, command) = steps[(i + run) % steps.count]
                    samples[key, default: []].append(try await tools.timed(label, work: work, environment: env, command))
                    if key == "rollback", let seconds = Self.lockedSeconds(work + "/rollback.json") { locked.append(seconds) }
                }
                // Keep one snapshot in the store: retention is not what is measured.
                _ = try await tools.timed("dbq run snapshot-retention", work: work, environment: env,
                                          [dbq, "run", "snapshot-retention", "--database", "source", "--keep-last", "1"])
            }
            emit("  " + pad("", 42) + lpad("seconds", 9) + lpad("peak RSS", 12))
            var figures: [String: (Double, Int?)] = [:]
            for (key, label, _) in steps {
                let s = samples[key]!
                figures[key] = (median(s.map(\.0)), s.compactMap(\.1).max())
                emit("  " + pad(label, 42) + lpad(String(format: "%.2f", figures[key]!.0), 9) + lpad(mebibytes(figures[key]!.1), 12))
            }
            if !locked.isEmpty {
                // pg_restore --single-transaction holds its lock from the DROP to the commit: its whole run.
                emit("  " + pad("  of which the table was locked", 42) + lpad(String(format: "%.2f", median(locked)), 9)
                     + String(format: "   (%.0f %% of the rollback; pg_restore holds it throughout)", 100 * median(locked) / figures["rollback"]!.0))
            }
            let snapshotRatio = figures["pg_dump"]!.0 / figures["snapshot"]!.0
            let rollbackRatio = figures["pg_restore"]!.0 / figures["rollback"]!.0
            let peak = max(figures["snapshot"]!.1 ?? 0, figures["rollback"]!.1 ?? 0)
            emit("")
            emit("targets: snapshot ≥ 1.0× pg_dump -Fc -t, rollback ≥ 1.0× pg_restore --single-transaction --clean, dbq peak ≤ 64 MiB")
            emit(String(format: "  snapshot %.2f× %@, rollback %.2f× %@, dbq peak %@ %@", snapshotRatio, mark(snapshotRatio >= 1), rollbackRatio,
                        mark(rollbackRatio >= 1), mebibytes(peak), mark(peak <= 64 << 20)))
        }
    }

    private func mark(_ ok: Bool) -> String { ok ? "(met)" : "(MISSED)" }

    /// `lockedSeconds` of a rollback's result, as `dbq run` prints it.
    static func lockedSeconds(_ path: String) -> Double? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let start = text.firstIndex(of: "{"),
              let json = try? JSONValue(json: String(text[start...])), case .object(let fields) = json else { return nil }
        if case .number(let seconds)? = fields["lockedSeconds"] { return seconds }
        if case .object(let result)? = fields["result"], case .number(let seconds)? = result["lockedSeconds"] { return seconds }
        return nil
    }
}
