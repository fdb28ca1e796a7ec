import Alerts
import ArgumentParser
import Dashboard
import DBQCommand
import DBQConfig
import Beat
import Foundation
import Metrics
import Queue
import RedisQueue
import ServiceLifecycle

struct BeatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "beat",
        abstract: "Recurring jobs from cron schedules: run the beat, preview, status.",
        subcommands: [Run.self, Next.self, Status.self],
        defaultSubcommand: Run.self)

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Fire the schedule's jobs until SIGTERM or SIGINT (any number of beats may run).",
            discussion: """
                One beat leads by a Redis lock with a token; the others take over within 5 s if \
                it dies. Each slot fires at most once: its job id is derived from (entry, slot) \
                and a slot fires only past the entry's cursor kept in Redis, so a restart neither \
                repeats nor silently drops a slot (catch_up decides what missed slots do).
                """)

        @OptionGroup var redis: RedisOptions
        @Option(name: .customLong("schedule"), help: "The schedule file (default: $DBQ_SCHEDULE, else schedule: of dbq.yaml, else jobs/schedule.yaml).") var scheduleOption: String?
        var schedule: String { scheduleOption ?? (try? DBQConfiguration.load(path: nil).schedule) ?? "jobs/schedule.yaml" }
        @Option(name: .customLong("metrics"), help: "Serve Prometheus metrics on /metrics and readiness on /healthz at HOST:PORT (e.g. 127.0.0.1:9465; default: $DBQ_METRICS).")
        var metricsOption: String?
        var metrics: String? { metricsOption ?? environment("DBQ_METRICS") }

        func run() async throws {
            try await reportingFailures {
                if let metrics { _ = try MetricsServer.address(metrics); _ = MetricsServer.bootstrapped }
                if environment("DBQ_LOG_LEVEL") == nil { setenv("DBQ_LOG_LEVEL", "info", 1) }
                let logger = makeLogger("dbq.beat")
                let loaded = try Schedule.load(path: schedule, registry: Kinds.registry)
                let queue = try redis.queue(logger: logger, connections: 2)
                try await queue.checkServer()
                let beat = BeatService(schedule: loaded, driver: RedisBeatDriver(queue: queue), registry: Kinds.registry, logger: logger)
                var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: beat)]
                // Alerts the beat sees: schedule entries late past their alert_after, databases
                // without a recent backup, dead-job alerts whose dead jobs are gone.
                // One reader of the manifests (cached 30 s) for the alerts and the metrics.
                let configuration = try? DBQConfiguration.load(path: nil)
                let artefacts = configuration.map { ArtefactRows(configuration: $0, logger: logger) }
                if let configuration, let artefacts, !configuration.alerts.isEmpty {
                    let alerting = Alerting(receivers: configuration.alerts, queue: queue, logger: logger)
                    services.append(.init(service: AlertWatch(alerting: alerting, schedule: loaded, queue: queue, artefacts: artefacts)))
                }
                if let metrics {
                    // Backups as their manifests tell it (what lasts, unlike a worker's memory),
                    // from the storages of dbq.yaml when the beat has one.
                    services.append(.init(service: try MetricsServer.service(listen: metrics, queue: queue, logger: logger) {
                        // Per entry, seconds since its last success (read from Redis at scrape time),
                        // and the entry's own alert_after, which the late-entry alert compares with.
                        for entry in loaded.entries {
                            if let after = entry.alertAfter {
                                Gauge(label: "dbq_schedule_alert_after_seconds", dimensions: [("entry", entry.name)]).record(after)
                            }
                            guard let state = try? await queue.beatState(entry: entry.name, queue: entry.queue) else { continue }
                            let reference = state.lastSuccess ?? state.since
                            Gauge(label: "dbq_schedule_seconds_since_success", dimensions: [("entry", entry.name)])
                                .record(reference.map { Date().timeIntervalSince($0) } ?? -1)
                        }
                        if let rows = try? await artefacts?.rows() { ArtefactRows.recordNewest(rows) }
                    }))
                }
                let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Per entry: next fire, last fire and its job's outcome, time since the last success, ALERT.",
            discussion: "Exits 2 while any entry is in alert (no success for longer than its alert_after), for monitoring.")

        @OptionGroup var redis: RedisOptions
        @Option(name: .customLong("schedule"), help: "The schedule file (default: $DBQ_SCHEDULE, else schedule: of dbq.yaml, else jobs/schedule.yaml).") var scheduleOption: String?
        var schedule: String { scheduleOption ?? (try? DBQConfiguration.load(path: nil).schedule) ?? "jobs/schedule.yaml" }
        @Flag(help: "Print JSON: {leader, entries: [...]}.") var json = false

        func run() async throws {
            var alerting = false
            try await reportingFailures {
                let logger = makeLogger("dbq.beat")
                let loaded = try Schedule.load(path: schedule, registry: Kinds.registry)
                let queue = try redis.queue(logger: logger, connections: 1)
                let report = try await ScheduleStatus.load(loaded, queue: queue)
                alerting = report.entries.contains { $0.alert }
                if json {
                    try printJSON(report)
                } else {
                    print("leader: \(report.leader ?? "none (no beat is running)")")
                    for r in report.entries {
                        let since = r.secondsSinceSuccess.map { relative(Date(timeIntervalSinceNow: -$0)) } ?? "never"
                        print("\(r.alert ? "ALERT " : "")\(r.name)  [\(r.cron) \(r.timezone)]  next \(isoString(r.nextFire))  last \(isoString(r.lastFire)) \(r.lastJobState ?? "-")  last success \(since)")
                    }
                }
            }
            if alerting { throw ExitCode(2) }
        }
    }

    struct Next: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "next",
            abstract: "Preview fire times of a schedule entry or of a cron expression, in its zone and in UTC.",
            discussion: """
                Daylight saving time: a slot in a skipped hour fires once at the first instant \
                after the gap; a slot in a repeated hour fires once, at its first occurrence.
                """)

        @Argument(help: "An entry of the schedule file.") var entry: String?
        @Option(help: "A cron expression instead of an entry (5 fields, 6 with seconds, or @daily…).") var cron: String?
        @Option(help: "IANA time zone for --cron.") var tz = "UTC"
        @Option(name: .customLong("schedule"), help: "The schedule file (default: $DBQ_SCHEDULE, else schedule: of dbq.yaml, else jobs/schedule.yaml).") var scheduleOption: String?
        var schedule: String { scheduleOption ?? (try? DBQConfiguration.load(path: nil).schedule) ?? "jobs/schedule.yaml" }
        @Option(help: "Start after this time (ISO 8601; default now).") var from: String?
        @Option(help: "How many fire times.") var count = 5

        func validate() throws {
            if (entry == nil) == (cron == nil) { throw ValidationError("give an entry name or --cron EXPR") }
            if count < 1 || count > 10_000 { throw ValidationError("--count must be from 1 to 10000") }
        }

        func run() async throws {
            try await reportingFailures {
                let expression: CronExpression
                let zone: TimeZone
                if let cron {
                    expression = try CronExpression(cron)
                    guard let z = TimeZone(identifier: tz) else {
                        throw ValidationError("--tz '\(tz)' is not an IANA time zone name (e.g. Europe/Berlin)")
                    }
                    zone = z
                } else {
                    let loaded = try Schedule.load(path: schedule, registry: Kinds.registry)
                    guard let found = loaded.entries.first(where: { $0.name == entry }) else {
                        throw ValidationError("no entry '\(entry!)' in \(schedule); entries: \(loaded.entries.map(\.name).joined(separator: ", "))")
                    }
                    expression = found.cron
                    zone = found.zone
                }
                let start = try from.map { try parseTime($0, option: "--from") } ?? Date()
                let local = ISO8601DateFormatter()
                local.timeZone = zone
                local.formatOptions = [.withInternetDateTime]
                let times = expression.upcoming(after: start, in: zone, count: count)
                if times.isEmpty { throw CheckFailure("\(expression) does not fire within 30 years of \(isoString(start))") }
                for time in times {
                    print("\(local.string(from: time))  \(isoString(time))")
                }
            }
        }
    }
}
