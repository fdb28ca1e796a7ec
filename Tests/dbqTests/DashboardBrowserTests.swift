import DBQTestSupport
import Foundation
import Logging
import Queue
import RedisClient
import RedisQueue
import Testing

/// The dashboard in a real browser: Debian's headless Chromium driven by Selenium
/// (`Browser/dashboard_check.py`), against a real `dbq dashboard` on real Redis.
@Suite("The web dashboard in a real headless browser (Chromium, Selenium, real Redis)", .serialized)
struct DashboardBrowserTests {
    @Test("every page loads without console errors; a pushed job appears live; retry is refused without the token and works with it; actions logged; cross-site and wrong-token requests refused; no secret shown")
    func browser() async throws {
        let queue = "dash-\(UUID().uuidString.prefix(8).lowercased())"
        let logger = Logger(label: "dbq.test.dashboard")
        let driver = RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: logger)
        // A dead job whose error names a connection URL with a password.
        let secret = "hunter2-\(UUID().uuidString.prefix(6))"
        let pushed = try await driver.push(JobEnvelope(kind: "noop", version: 1, payload: .object([:]), queue: queue, maxAttempts: 1))
        let fetched = try await driver.fetch(queue: queue, max: 1, worker: "browser-test", lease: .seconds(60))
        let lease = try #require(fetched.jobs.first?.lease)
        #expect(try await driver.finish([(lease, .dead(error: "cannot connect to postgresql://app:\(secret)@db.internal/app: refused"))]) == [true])

        let token = "dashboard-token-\(UUID().uuidString)"
        let dir = TestServices.temporaryDirectory("dbq-dashboard")
        try "databases:\n  main: \"\(TestServices.databaseURL)\"\nstorages:\n  archive: {url: \"file://\(dir)/store\"}\n"
            .write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let env = ["DBQ_REDIS_URL": TestServices.redisURL, "DBQ_DASHBOARD_TOKEN": token, "DBQ_CONFIG": dir + "/dbq.yaml"]
        // A verified backup in the storage, for the artefacts page.
        for kind in ["backup", "verify-backup"] {
            let r = try await runCommand(TestServices.dbqBinary, ["run", kind, "--database", "main"], environment: env, timeout: 120)
            #expect(r.status == 0, "dbq run \(kind): \(r.stderr)")
        }
        // A port above Linux's ephemeral range (32768–60999, where the tests' own client
        // connections get theirs), and another one if something holds it after all.
        var port = 0
        var dashboard: ChildProcess?
        var ready = false
        for _ in 0..<5 where !ready {
            port = Int.random(in: 61_000...64_999)
            let child = try ChildProcess(TestServices.dbqBinary, ["dashboard", "--listen", "127.0.0.1:\(port)", "--schedule", TestServices.projectRoot + "/jobs/schedule.yaml"],
                                         environment: env)
            dashboard = child
            ready = try await eventually(.seconds(30), every: .milliseconds(200)) {
                guard child.isRunning else { return true }  // it stopped: the check below says why
                return (try? await runCommand("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/healthz"]))?.status == 0
            } && child.isRunning
            if !ready {
                child.signal(SIGTERM)
                try await Task.sleep(for: .milliseconds(300))  // its last words reach stderr
                guard child.stderr.contains("Address already in use") else { break }
            }
        }
        defer { dashboard?.signal(SIGTERM) }
        try #require(ready, "the dashboard never answered /healthz: \(dashboard?.stderr.suffix(2000) ?? "")")
        let server = try #require(dashboard)

        let script = TestServices.projectRoot + "/Tests/dbqTests/Browser/dashboard_check.py"
        let result = try await runCommand("/usr/bin/python3", [script, "--url", "http://127.0.0.1:\(port)", "--token", token, "--queue", queue,
                                                               "--dead-id", pushed.id, "--secret", secret, "--dbq", TestServices.dbqBinary],
                                          environment: ["DBQ_REDIS_URL": TestServices.redisURL], timeout: 240)
        #expect(result.status == 0, "browser checks:\n\(result.stdout)\n\(result.stderr.suffix(3000))\ndashboard: \(server.stderr.suffix(2000))")
        #expect(result.stdout.contains("all checks passed"))
        // What the browser did, as Redis tells it.
        #expect(try await driver.job(pushed.id, queue: queue)?.state == "pending")
        #expect(!server.stderr.contains(secret), "the secret reached the dashboard's log")
    }
}
