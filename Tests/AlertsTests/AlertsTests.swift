import Alerts
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import PostgresClient
import Queue
import RedisClient
import RedisQueue
import Testing

@Suite("Alerts: configuration, messages and rules (pure)")
struct AlertRuleTests {
    func parse(_ yaml: String, environment: [String: String] = [:]) throws(ConfigurationError) -> DBQConfiguration {
        try DBQConfiguration.parse(yaml, file: "dbq.yaml", environment: environment)
    }

    @Test("alerts: in dbq.yaml: webhook, Slack and e-mail receivers; every mistake named with its path; secrets masked in dbq config show")
    func configuration() throws {
        let c = try parse("""
            alerts:
              - {name: hook, webhook: "https://hooks.example.com/T0/B0/secret-part", on: [job_dead, health_critical], repeat: 30m}
              - {name: chat, slack: "https://hooks.slack.com/services/T0/B0/XXXX", on: schedule_late}
              - name: mail
                email: {smtp: "smtp://dbq:mail-pass@mail.internal:587", from: dbq@example.com, to: [ops@example.com, dba@example.com], starttls: required}
                on: [backup_missing, verification_missing]
                backup_max_age: 2d
                verification_max_age: 2w
            """)
        #expect(c.alerts.map(\.name) == ["hook", "chat", "mail"])
        #expect(c.alerts[0].kind == .webhook && c.alerts[0].on == [.jobDead, .healthCritical] && c.alerts[0].repeatSeconds == 1800)
        #expect(c.alerts[1].kind == .slack && c.alerts[1].repeatSeconds == 4 * 3600)
        #expect(c.alerts[2].kind == .email && c.alerts[2].to.count == 2 && c.alerts[2].requireTLS && c.alerts[2].backupMaxAgeSeconds == 2 * 86_400
                && c.alerts[2].verificationMaxAgeSeconds == 14 * 86_400 && c.alerts[2].on == [.backupMissing, .verificationMissing])
        #expect(c.alerts[0].redactedURL == "https://hooks.example.com/***")
        #expect(c.alerts[2].redactedURL == "smtp://dbq:***@mail.internal:587")
        let shown = c.redactedYAML
        for secret in ["secret-part", "XXXX", "mail-pass"] { #expect(!shown.contains(secret), "\(secret) in \(shown)") }

        // A secret URL may come from the environment instead.
        let fromEnv = try parse("alerts: [{name: ops-hook, webhook: https://placeholder.invalid/x, on: [job_dead]}]",
                                environment: ["DBQ_ALERT_URL_OPS_HOOK": "https://real.example.com/hook"])
        #expect(fromEnv.alerts[0].url == "https://real.example.com/hook")

        do {
            _ = try parse("""
                alerts:
                  - {name: a, webhook: ftp://x, on: [job_dead, bogus], repeat: 5s}
                  - {name: b, slack: https://x, email: {smtp: smtp://x}, on: [job_dead]}
                  - {name: c, email: {smtp: "http://mail", from: nobody, to: []}, on: []}
                """)
            Issue.record("a bad alerts: section was accepted")
        } catch {
            let text = error.description
            for expected in ["alerts.a.webhook: 'ftp://x' must start with https:// or http://", "alerts.a.on: 'bogus' is not one of",
                             "alerts.a.repeat: '5s' is not a duration of a minute or more", "alerts.b: give exactly one of webhook",
                             "alerts.c.email.smtp:", "alerts.c.email.from: required", "alerts.c.email.to: one or more", "alerts.c.on: required"] {
                #expect(text.contains(expected), "missing \(expected) in \(text)")
            }
        }
    }

    let alert = Alert(condition: .healthCritical, subject: "main", severity: .critical, summary: "health of main is critical",
                      details: "critical: sequences: public.orders_id_seq at 95 %", since: Date(timeIntervalSince1970: 1_800_000_000))

    @Test("messages: the webhook's JSON, Slack's text and the e-mail's headers say what, where, since when and whether it resolved")
    func messages() throws {
        let at = Date(timeIntervalSince1970: 1_800_000_600)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(AlertMessage.webhook(alert, status: .firing, host: "w1", at: at))) as? [String: Any])
        #expect(json["status"] as? String == "firing" && json["key"] as? String == "health_critical:main" && json["severity"] as? String == "critical")
        #expect(json["since"] as? String == "2027-01-15T08:00:00Z" && json["host"] as? String == "w1" && json["source"] as? String == "dbq")
        let resolved = try #require(try JSONSerialization.jsonObject(with: Data(AlertMessage.webhook(alert, status: .resolved, host: "w1", at: at))) as? [String: Any])
        #expect(resolved["status"] as? String == "resolved")

        let slack = try #require(try JSONSerialization.jsonObject(with: Data(AlertMessage.slack(alert, status: .firing, host: "w1", at: at))) as? [String: Any])
        let text = try #require(slack["text"] as? String)
        #expect(text.contains(":rotating_light: *[dbq] CRITICAL: health of main is critical*") && text.contains("public.orders_id_seq"))
        let slackResolved = String(decoding: AlertMessage.slack(alert, status: .resolved, host: "w1", at: at), as: UTF8.self)
        #expect(slackResolved.contains(":white_check_mark:") && slackResolved.contains("RESOLVED"))

        let mail = AlertMessage.email(alert, status: .firing, from: "dbq@example.com", to: ["ops@example.com"], host: "w1", at: at)
        #expect(mail.hasPrefix("From: dbq <dbq@example.com>\nTo: ops@example.com\nSubject: [dbq] CRITICAL: health of main is critical\nDate: Fri, 15 Jan 2027 08:10:00 +0000\n"))
        #expect(mail.contains("X-DBQ-Alert: health_critical:main") && mail.contains("\n\n"))
    }

    @Test("rules: a dead job raises job_dead for its queue and kind; a failed health job raises health_critical (and archiving_failing for the archiving check); a passing one resolves them and raises its warnings")
    func afterJob() {
        let dead = AlertRules.afterJob(FinishedJob(id: "j1", queue: "default", kind: "backup", outcome: .dead(error: "pg_dump: connection refused"),
                                                   payload: .object(["database": .string("main")])))
        #expect(dead.raise.map(\.key) == ["job_dead:default/backup"] && dead.raise[0].details.contains("connection refused") && dead.resolve.isEmpty)
        #expect(AlertRules.afterJob(FinishedJob(id: "j2", queue: "default", kind: "backup", outcome: .succeeded(result: nil), payload: nil)) == AlertDecisions())

        let critical = AlertRules.afterJob(FinishedJob(id: "h1", queue: "default", kind: "health",
                                                       outcome: .dead(error: "critical: archiving: 3 failures — check archive_command"),
                                                       payload: .object(["database": .string("main")])))
        #expect(critical.raise.map(\.key) == ["health_critical:main", "archiving_failing:main"])
        #expect(!AlertRules.afterJob(FinishedJob(id: "h2", queue: "default", kind: "health", outcome: .dead(error: "critical: sequences: 95 %"),
                                                 payload: .object(["database": .string("main")]))).raise.contains { $0.condition == .archivingFailing })

        let report: JSONValue = .object(["database": .string("main"), "checks": .array([
            .object(["name": .string("connections"), "status": .string("ok")]),
            .object(["name": .string("long_transactions"), "status": .string("warning")]),
        ])])
        let passed = AlertRules.afterJob(FinishedJob(id: "h3", queue: "default", kind: "health", outcome: .succeeded(result: report), payload: .object(["database": .string("main")])))
        #expect(passed.resolve == ["health_critical:main", "archiving_failing:main"])
        #expect(passed.raise.map(\.key) == ["health_warning:main"] && passed.raise[0].details.contains("long_transactions"))
        let clean: JSONValue = .object(["database": .string("main"), "checks": .array([.object(["name": .string("connections"), "status": .string("ok")])])])
        #expect(AlertRules.afterJob(FinishedJob(id: "h4", queue: "default", kind: "health", outcome: .succeeded(result: clean), payload: .object(["database": .string("main")]))).resolve
                == ["health_critical:main", "archiving_failing:main", "health_warning:main"])
    }

    @Test("rules: each schedule entry against its own alert_after (a weekly entry two days on is fine, an hourly one three hours on is late); backups against their maximum age")
    func scheduleAndBackups() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(AlertRules.schedule(entry: "weekly-verify", alertAfter: 8 * 86_400, reference: now.addingTimeInterval(-2 * 86_400), now: now).raise.isEmpty)
        let late = AlertRules.schedule(entry: "hourly-health", alertAfter: 2 * 3600, reference: now.addingTimeInterval(-3 * 3600), now: now)
        #expect(late.raise.map(\.key) == ["schedule_late:hourly-health"] && late.raise[0].summary.contains("3 h"))
        #expect(AlertRules.schedule(entry: "x", alertAfter: nil, reference: now.addingTimeInterval(-99 * 86_400), now: now).resolve == ["schedule_late:x"])
        #expect(AlertRules.backup(database: "main", newest: now.addingTimeInterval(-27 * 3600), maxAge: 26 * 3600, now: now).raise.map(\.key) == ["backup_missing:main"])
        #expect(AlertRules.backup(database: "main", newest: nil, maxAge: 26 * 3600, now: now).raise[0].details.hasPrefix("it has no backup"))
        #expect(AlertRules.backup(database: "main", newest: now.addingTimeInterval(-3600), maxAge: 26 * 3600, now: now).resolve == ["backup_missing:main"])
        let unverified = AlertRules.verification(database: "main", newestVerified: now.addingTimeInterval(-9 * 86_400), maxAge: 8 * 86_400, now: now)
        #expect(unverified.raise.map(\.key) == ["verification_missing:main"] && unverified.raise[0].details.contains("9 d ago"))
        #expect(AlertRules.verification(database: "main", newestVerified: nil, maxAge: 8 * 86_400, now: now).raise[0].details.hasPrefix("none of its backups has passed"))
        #expect(AlertRules.verification(database: "main", newestVerified: now.addingTimeInterval(-86_400), maxAge: 8 * 86_400, now: now).resolve == ["verification_missing:main"])
    }
}

@Suite("Alerts through real Redis, a real webhook receiver and a real SMTP server", .serialized)
struct AlertDeliveryTests {
    let logger = Logger(label: "dbq.test.alerts")

    func queue() throws -> RedisQueue {
        RedisQueue(configuration: try RedisConfiguration(url: TestServices.redisURL), logger: logger, connections: 2)
    }

    func alert(_ subject: String, _ condition: AlertCondition = .jobDead) -> Alert {
        Alert(condition: condition, subject: subject, severity: .critical, summary: "a backup job went dead in queue \(subject)", details: "job x: boom")
    }

    @Test("two processes see the same condition: one message; none again inside the repeat interval; one resolution however many resolve it")
    func deduplicated() async throws {
        let sink = try WebhookSink()
        try await sink.ready()
        let receiver = AlertReceiver(name: "hook-\(UUID().uuidString.prefix(6))", kind: .webhook, url: sink.url, on: [.jobDead], repeatSeconds: 3600)
        let a = Alerting(receivers: [receiver], queue: try queue(), logger: logger, host: "worker-a")
        let b = Alerting(receivers: [receiver], queue: try queue(), logger: logger, host: "worker-b")
        let subject = "q\(UUID().uuidString.prefix(8).lowercased())/backup"
        async let one: Void = a.raise(alert(subject))
        async let two: Void = b.raise(alert(subject))
        _ = await (one, two)
        await a.raise(alert(subject))
        await b.raise(alert(subject))
        let key = "job_dead:\(subject)"
        #expect(sink.messages.filter { $0["key"] as? String == key }.count == 1, "\(sink.messages)")
        #expect(try await a.firing().contains { $0.key == key })

        async let r1: Void = a.resolve(key: key)
        async let r2: Void = b.resolve(key: key)
        _ = await (r1, r2)
        let mine = sink.messages.filter { $0["key"] as? String == key }
        #expect(mine.map { $0["status"] as? String } == ["firing", "resolved"], "\(mine)")
        #expect(try await a.firing().allSatisfy { $0.key != key })
        // The secret in the receiver's URL reaches no message.
        #expect(!(try String(contentsOfFile: sink.file, encoding: .utf8)).contains("s3cr3t-token"))

        // Firing again after the resolution is a new alert: told again.
        await b.raise(alert(subject))
        #expect(sink.messages.filter { $0["key"] as? String == key }.count == 3)
        await a.resolve(key: key)
    }

    @Test("a receiver that fails is retried with backoff until it takes the message; one that never answers is given up, counted and logged, and the caller goes on")
    func retried() async throws {
        let flaky = try WebhookSink(failFirst: 2)
        try await flaky.ready()
        let receiver = AlertReceiver(name: "flaky-\(UUID().uuidString.prefix(6))", kind: .webhook, url: flaky.url, on: [.jobDead])
        let alerting = Alerting(receivers: [receiver], queue: try queue(), logger: logger, attempts: 4, backoff: Backoff(base: .milliseconds(100), cap: .milliseconds(300)))
        let subject = "q\(UUID().uuidString.prefix(8).lowercased())/export"
        await alerting.raise(alert(subject))
        #expect(flaky.messages.count == 1, "the third attempt got through")
        await alerting.resolve(key: "job_dead:\(subject)")

        let closed = LoopbackPort.free() ?? 1
        let dead = AlertReceiver(name: "down-\(UUID().uuidString.prefix(6))", kind: .webhook, url: "http://127.0.0.1:\(closed)/hook/secret", on: [.jobDead])
        let log = CapturedLog()
        let failing = Alerting(receivers: [dead], queue: try queue(), logger: log.logger("dbq.test.alerts"), attempts: 2, backoff: Backoff(base: .milliseconds(50), cap: .milliseconds(50)))
        let started = ContinuousClock.now
        await failing.raise(alert("q\(UUID().uuidString.prefix(8).lowercased())/noop"))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(log.text.contains("alert not delivered") && !log.text.contains("/hook/secret"), "\(log.text)")
    }

    @Test("e-mail through a real SMTP server: the firing message and its resolution arrive, with the condition in the subject")
    func email() async throws {
        let smtp = try SMTPSink()
        try await smtp.ready()
        let receiver = AlertReceiver(name: "mail-\(UUID().uuidString.prefix(6))", kind: .email, url: smtp.url, from: "dbq@example.com",
                                     to: ["ops@example.com"], on: [.backupMissing])
        let alerting = Alerting(receivers: [receiver], queue: try queue(), logger: logger)
        let database = "db\(UUID().uuidString.prefix(8).lowercased())"
        await alerting.apply(AlertRules.backup(database: database, newest: nil, maxAge: 26 * 3600))
        await alerting.apply(AlertRules.backup(database: database, newest: Date(), maxAge: 26 * 3600))
        let mails = try await polled(.seconds(10), { smtp.messages.filter { $0.contains(database) } }, until: { $0.count >= 2 })
        #expect(mails.count == 2, "\(smtp.messages)")
        #expect(mails.contains { $0.contains("Subject: [dbq] CRITICAL: no backup of \(database) within 26 h") })
        #expect(mails.contains { $0.contains("Subject: [dbq] RESOLVED: no backup of \(database)") })
        try await alerting.test(receiver)
        #expect(try await polled(.seconds(10), { smtp.messages }, until: { $0.contains { $0.contains("[dbq] TEST") } }).contains { $0.contains("[dbq] TEST") })
    }

    @Test("real workers: jobs that go dead on two workers give one job_dead message; dbq alerts list shows it; purged, it resolves once")
    func deadJobsFromWorkers() async throws {
        let sink = try WebhookSink()
        try await sink.ready()
        let dir = TestServices.temporaryDirectory("dbq-alerts")
        let queueName = "alerts-\(UUID().uuidString.prefix(8).lowercased())"
        try """
            alerts:
              - {name: hook, webhook: "\(sink.url)", on: [job_dead], repeat: 1h}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let env = ["DBQ_CONFIG": dir + "/dbq.yaml", "DBQ_REDIS_URL": TestServices.redisURL]
        let dbq = TestServices.dbqBinary
        let workers = try (0..<2).map { _ in try ChildProcess(dbq, ["worker", "--queues", queueName, "--idle-wait", "200ms", "--concurrency", "2"], environment: env) }
        defer { for w in workers { w.signal(SIGTERM) } }
        for _ in 0..<4 {
            let pushed = try await runCommand(dbq, ["push", "job", "sleep", "--queue", queueName, "--max-attempts", "1",
                                                    "--payload", #"{"seconds": 0.2, "fail": "boom", "permanent": true}"#], environment: env)
            #expect(pushed.status == 0, "\(pushed.stderr)")
        }
        let key = "job_dead:\(queueName)/sleep"
        let seen = try await polled(.seconds(30), { sink.messages.filter { $0["key"] as? String == key } }, until: { !$0.isEmpty })
        try await Task.sleep(for: .seconds(2))  // the other dead jobs' alerts, had they not been deduplicated
        #expect(sink.messages.filter { $0["key"] as? String == key }.count == 1, "\(sink.messages) workers: \(workers.map { $0.stderr.suffix(1500) })")
        #expect((seen.first?["details"] as? String)?.contains("boom") == true)

        let list = try await runCommand(dbq, ["alerts", "list"], environment: env)
        #expect(list.status == 0 && list.stdout.contains(key) && list.stdout.contains("webhook http://127.0.0.1:\(sink.port)/***") && !list.stdout.contains("s3cr3t"), "\(list.stdout)\(list.stderr)")
        let test = try await runCommand(dbq, ["alerts", "test", "hook"], environment: env)
        #expect(test.status == 0 && sink.messages.contains { $0["status"] as? String == "test" }, "\(test.stderr)")
        let unknown = try await runCommand(dbq, ["alerts", "test", "nope"], environment: env)
        #expect(unknown.status != 0 && unknown.stderr.contains("no alert receiver 'nope'; configured: hook"), "\(unknown.stderr)")

        let purge = try await runCommand(dbq, ["dead", "purge", "--queue", queueName], environment: env)
        #expect(purge.status == 0, "\(purge.stderr)")
        let receiver = AlertReceiver(name: "hook", kind: .webhook, url: sink.url, on: [.jobDead], repeatSeconds: 3600)
        let watchers = try (0..<2).map { _ in Alerting(receivers: [receiver], queue: try queue(), logger: logger) }
        async let w1: Void = watchers[0].resolveClearedDeadJobs()
        async let w2: Void = watchers[1].resolveClearedDeadJobs()
        _ = await (w1, w2)
        #expect(sink.messages.filter { $0["key"] as? String == key }.map { $0["status"] as? String } == ["firing", "resolved"])
    }

    @Test("a critical health finding fails the health job (push --wait exits 1 naming the check) and raises health_critical; fixed, the next health job resolves it")
    func healthCritical() async throws {
        let sink = try WebhookSink()
        try await sink.ready()
        let database = try await ScratchDatabase.create("dbqt_alerts", setup: "CREATE SEQUENCE orders_id_seq AS integer; SELECT setval('orders_id_seq', 2040109466)")
        defer { Task { await ScratchDatabase.drop(database) } }
        let dir = TestServices.temporaryDirectory("dbq-alerts-health")
        let queueName = "alerts-h-\(UUID().uuidString.prefix(8).lowercased())"
        let subject = "h\(UUID().uuidString.prefix(8).lowercased())"
        try """
            databases:
              \(subject): "\(ScratchDatabase.server.replacingDatabase(database))"
            alerts:
              - {name: hook, webhook: "\(sink.url)", on: [health_critical, health_warning, job_dead], repeat: 1h}
            """.write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let env = ["DBQ_CONFIG": dir + "/dbq.yaml", "DBQ_REDIS_URL": TestServices.redisURL]
        let dbq = TestServices.dbqBinary
        let worker = try ChildProcess(dbq, ["worker", "--queues", queueName, "--idle-wait", "200ms"], environment: env)
        defer { worker.signal(SIGTERM) }

        let failed = try await runCommand(dbq, ["push", "health", "--database", subject, "--queue", queueName, "--wait"], environment: env, timeout: 60)
        #expect(failed.status != 0, "a critical finding is not a succeeded job: \(failed.stdout)")
        #expect((failed.stdout + failed.stderr).contains("critical: sequences"), "\(failed.stdout) \(failed.stderr)")
        let key = "health_critical:\(subject)"
        let firing = try await polled(.seconds(20), { sink.messages.filter { $0["key"] as? String == key } }, until: { !$0.isEmpty })
        #expect(firing.first?["status"] as? String == "firing" && (firing.first?["details"] as? String)?.contains("orders_id_seq") == true, "\(sink.messages)")
        #expect(!sink.messages.contains { ($0["key"] as? String)?.hasPrefix("job_dead:") == true && ($0["key"] as? String)?.contains(queueName) == true },
                "a failed health job is told as health_critical, not also as a dead job")

        let db = try await ScratchDatabase.connect(database)
        _ = try await db.execute("SELECT setval('orders_id_seq', 1)")
        await db.close()
        let passed = try await runCommand(dbq, ["push", "health", "--database", subject, "--queue", queueName, "--wait"], environment: env, timeout: 60)
        #expect(passed.status == 0, "\(passed.stdout) \(passed.stderr)")
        let both = try await polled(.seconds(20), { sink.messages.filter { $0["key"] as? String == key } }, until: { $0.count >= 2 })
        #expect(both.map { $0["status"] as? String } == ["firing", "resolved"], "\(sink.messages)")
    }
}

