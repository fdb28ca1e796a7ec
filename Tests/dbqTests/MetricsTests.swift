import DBQTestSupport
import Foundation
import Testing
import Yams

/// A real worker and a real beat serving /metrics: the names the alert rules and the
/// dashboard use exist, with the values the jobs they ran must give.
@Suite("Prometheus metrics from a real worker and beat; the shipped alert rules and dashboard", .serialized)
struct MetricsTests {
    var dbq: String { TestServices.dbqBinary }

    func scrape(_ port: Int, _ path: String = "/metrics") async throws -> CommandResult {
        try await runCommand("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
    }

    @Test("jobs finished by outcome, durations, slots, queue depth, backups, beat leader and schedule entries; /healthz ready; every metric of the rules and dashboard exists")
    func metrics() async throws {
        let dir = TestServices.temporaryDirectory("dbq-metrics")
        let queue = "metrics-\(UUID().uuidString.prefix(8).lowercased())"
        try """
            databases:
              main: "\(TestServices.databaseURL)"
            storages:
              archive: {url: "file://\(dir)/store"}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        try """
            entries:
              - {name: metrics-tick, cron: "* * * * * *", kind: noop, queue: \(queue), catch_up: skip, alert_after: 10m}
            """.write(toFile: dir + "/schedule.yaml", atomically: true, encoding: .utf8)
        let env = ["DBQ_CONFIG": dir + "/dbq.yaml", "DBQ_REDIS_URL": TestServices.redisURL]
        let workerPort = Int.random(in: 20_000...24_999), beatPort = Int.random(in: 25_000...29_999)  // below the ephemeral range (32768+)
        let worker = try ChildProcess(dbq, ["worker", "--queues", queue, "--metrics", "127.0.0.1:\(workerPort)", "--idle-wait", "200ms"], environment: env)
        defer { worker.signal(SIGTERM) }
        let beat = try ChildProcess(dbq, ["beat", "--schedule", dir + "/schedule.yaml", "--metrics", "127.0.0.1:\(beatPort)"], environment: env)
        defer { beat.signal(SIGTERM) }

        for kind in ["backup", "verify-backup"] {
            let r = try await runCommand(dbq, ["push", kind, "--database", "main", "--queue", queue, "--wait"], environment: env, timeout: 120)
            #expect(r.status == 0, "\(kind): \(r.stderr) worker: \(worker.stderr.suffix(2000))")
        }
        // The database's state as gauges: served whether the checks pass or find something
        // critical (the shared test server may hold another test's long transaction).
        _ = try await runCommand(dbq, ["push", "health", "--database", "main", "--queue", queue, "--wait"], environment: env, timeout: 120)

        let text = try await polled(.seconds(30), every: .seconds(1), { try await scrape(workerPort).stdout },
                                    until: { $0.contains("kind=\"noop\",outcome=\"succeeded\"") })
        #expect(text.contains("dbq_jobs_finished_total{queue=\"\(queue)\",kind=\"backup\",outcome=\"succeeded\"} 1"), "\(text.prefix(3000))")
        #expect(text.contains("dbq_jobs_finished_total{queue=\"\(queue)\",kind=\"verify-backup\",outcome=\"succeeded\"} 1"))
        #expect(text.contains("kind=\"noop\",outcome=\"succeeded\""), "the beat's ticks ran")
        #expect(text.contains("dbq_job_duration_seconds_count{kind=\"backup\"} 1"))
        #expect(text.contains("dbq_backup_last_size_bytes{database=\"main\"}"))
        #expect(text.contains("dbq_backup_last_verified_timestamp_seconds{database=\"main\"}"))
        #expect(text.contains("dbq_queue_jobs{queue=\"\(queue)\",state=\"pending\"}"))
        #expect(text.contains("dbq_worker_slots{state=\"idle\"}"))
        for gauge in ["dbq_database_max_connections{database=\"main\"}", "dbq_database_connections{database=\"main\",state=\"active\"}",
                      "dbq_database_transaction_ids_left{database=\"main\"}", "dbq_database_longest_transaction_seconds{database=\"main\"}",
                      "dbq_database_sequence_fullest_ratio{database=\"main\"}", "dbq_database_size_bytes{database=\"main\"}"] {
            #expect(text.contains(gauge), "\(gauge) not served")
        }
        #expect(!text.contains("dbq_database_longest_query{"), "numbers only")
        let health = try await scrape(workerPort, "/healthz")
        #expect(health.stdout.hasSuffix("200"), "\(health.stdout)")
        #expect(try await scrape(workerPort, "/livez").stdout.hasSuffix("200"), "the liveness endpoint answers")

        let beatText = try await polled(.seconds(40), every: .seconds(1), { try await scrape(beatPort).stdout }, until: {
            $0.contains("dbq_beat_leader 1") && $0.contains("dbq_schedule_seconds_since_success{entry=\"metrics-tick\"}")
                && $0.contains("dbq_backup_newest_verified_timestamp_seconds{database=\"main\"}")
        })
        #expect(beatText.contains("dbq_beat_leader 1"), "\(beatText.prefix(2000)) beat: \(beat.stderr.suffix(2000))")
        #expect(beatText.contains("dbq_schedule_seconds_since_success{entry=\"metrics-tick\"}"))
        // The entry's own threshold, which the late-entry alert compares with (not a fixed 26 h).
        #expect(beatText.contains("dbq_schedule_alert_after_seconds{entry=\"metrics-tick\"} 600"), "\(beatText.prefix(3000))")
        // The newest backup and newest verified backup from the manifests, served by the beat:
        // they outlive any worker's memory.
        #expect(beatText.contains("dbq_backup_newest_timestamp_seconds{database=\"main\"}"), "\(beatText.prefix(3000))")
        #expect(beatText.contains("dbq_backup_newest_verified_timestamp_seconds{database=\"main\"}"))

        // Every metric the shipped rules and dashboard name is one dbq serves.
        let served = Set((text + "\n" + beatText).split(separator: "\n").filter { $0.hasPrefix("dbq_") }.map { line -> String in
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) { return String(name.dropLast(suffix.count)) }
            return name
        })
        let root = TestServices.projectRoot + "/deploy/monitoring/"
        let rules = try String(contentsOfFile: root + "dbq-alerts.yml", encoding: .utf8)
        let parsed = try #require(try Yams.load(yaml: rules) as? [String: Any])
        let groups = try #require(parsed["groups"] as? [[String: Any]])
        let exprs = groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.compactMap { $0["expr"] as? String }
        #expect(exprs.count == 12)
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "dbq-dashboard.json"))) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let queries = panels.flatMap { ($0["targets"] as? [[String: Any]]) ?? [] }.compactMap { $0["expr"] as? String }
        #expect(queries.count >= 10)
        // Served only where the database has them: replicas (their lag), archive_mode on
        // (archiving's figures). The test server has neither; promtool's unit tests cover
        // the rules that read them.
        let conditional: Set<String> = ["dbq_database_replication_lag_seconds", "dbq_database_archive_failing",
                                        "dbq_database_archive_seconds_since_archived", "dbq_database_archive_waiting_segments"]
        for expr in exprs + queries {
            for name in Self.metricNames(expr) where !conditional.contains(name) {
                let base = name.hasSuffix("_bucket") ? String(name.dropLast(7)) : name
                #expect(served.contains(base), "\(name) (in \(expr)) is not served; served: \(served.sorted())")
            }
        }
        // promtool (Debian's prometheus package; deploy/local/install.sh installs it) checks the
        // rules and runs their unit tests: each alert under the condition it must fire in,
        // and one it must not.
        let promtool = try #require(["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
                                    "promtool is missing: run deploy/local/install.sh")
        let check = try await runCommand(promtool, ["check", "rules", root + "dbq-alerts.yml"])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        let unit = try await runCommand(promtool, ["test", "rules", root + "dbq-alerts.test.yml"])
        #expect(unit.status == 0 && unit.stdout.contains("SUCCESS"), "\(unit.stdout) \(unit.stderr)")
        let cases = try #require(try Yams.load(yaml: String(contentsOfFile: root + "dbq-alerts.test.yml", encoding: .utf8)) as? [String: Any])
        let tested = Set(((cases["tests"] as? [[String: Any]]) ?? []).flatMap { ($0["alert_rule_test"] as? [[String: Any]]) ?? [] }.compactMap { $0["alertname"] as? String })
        let alerts = Set(groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.compactMap { $0["alert"] as? String })
        #expect(alerts == tested, "every alert has a unit test: untested \(alerts.subtracting(tested).sorted())")
    }

    static func metricNames(_ expr: String) -> Set<String> {
        var names: Set<String> = []
        var current = ""
        for ch in expr + " " {
            if ch.isLetter || ch.isNumber || ch == "_" { current.append(ch) } else {
                if current.hasPrefix("dbq_") { names.insert(current) }
                current = ""
            }
        }
        return names
    }
}
