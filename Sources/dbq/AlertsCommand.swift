import Alerts
import ArgumentParser
import Beat
import DBQCommand
import DBQConfig
import DBQSupport
import Queue
import Foundation
import Logging
import RedisQueue
import ServiceLifecycle

/// `dbq alerts`: what fires now, and a test message to a receiver.
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "The alerts that the receivers under alerts: in dbq.yaml get: what fires now, and a test message.",
        discussion: """
            Receivers are webhooks (JSON), Slack-compatible incoming webhooks and e-mail (SMTP, \
            STARTTLS). Conditions: health_critical, health_warning, job_dead, schedule_late, \
            backup_missing, verification_missing, archiving_failing. Workers raise job_dead and \
            the health job's conditions, the beat schedule_late, backup_missing and \
            verification_missing; each is told once per \
            receiver and repeat interval across the fleet (the state is in Redis), and told \
            again when it resolves.
            """,
        subcommands: [List.self, Test.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The alerts firing now, oldest first, and the receivers configured.")
        @OptionGroup var config: ConfigOptions
        @OptionGroup var redis: RedisOptions
        @Flag(help: "Print JSON: {firing: [...], receivers: [...]}.") var json = false

        func run() async throws {
            try await reportingFailures {
                let loaded = try config.load()
                let queue = RedisQueue(configuration: try redis.configuration(fallback: loaded), logger: makeLogger("dbq.alerts"), connections: 1)
                let firing = try await Alerting(receivers: loaded.alerts, queue: queue, logger: makeLogger("dbq.alerts")).firing()
                if json {
                    let receivers: [JSONValue] = loaded.alerts.map { r in
                        .object(["name": .string(r.name), "kind": .string(r.kind.rawValue), "url": .string(r.redactedURL),
                                 "on": .array(r.on.map(\.rawValue).sorted().map { .string($0) }), "repeatSeconds": .number(r.repeatSeconds)])
                    }
                    let alerts = try firing.map { try JSONValue(encoding: $0) }
                    print(JSONValue.object(["firing": .array(alerts), "receivers": .array(receivers)]).jsonText)
                    return
                }
                if firing.isEmpty { print("nothing fires") }
                for alert in firing {
                    print("\(alert.severity.rawValue.uppercased())  \(alert.key)  since \(ISO8601DateFormatter().string(from: alert.since))  \(alert.summary)")
                }
                print(loaded.alerts.isEmpty ? "no receivers: add alerts: to dbq.yaml" : "receivers:")
                for r in loaded.alerts {
                    print("  \(r.name)  \(r.kind.rawValue) \(r.redactedURL)  on \(r.on.map(\.rawValue).sorted().joined(separator: ","))  repeat \(Int(r.repeatSeconds))s")
                }
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "test", abstract: "Send a test message to one receiver now; exit 1 with the reason if it does not arrive.")
        @OptionGroup var config: ConfigOptions
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The receiver's name under alerts: in dbq.yaml.") var name: String

        func run() async throws {
            try await reportingFailures {
                let loaded = try config.load()
                guard let receiver = loaded.alerts.first(where: { $0.name == name }) else {
                    let known = loaded.alerts.map(\.name)
                    throw ValidationError("no alert receiver '\(name)'; " + (known.isEmpty ? "alerts: in dbq.yaml lists none" : "configured: \(known.joined(separator: ", "))"))
                }
                let queue = RedisQueue(configuration: try redis.configuration(fallback: loaded), logger: makeLogger("dbq.alerts"), connections: 1)
                do {
                    try await Alerting(receivers: loaded.alerts, queue: queue, logger: makeLogger("dbq.alerts")).test(receiver)
                } catch {
                    throw ValidationError("the test message to \(receiver.name) (\(receiver.kind.rawValue) \(receiver.redactedURL)) failed: \(error)")
                }
                print("sent a test message to \(receiver.name) (\(receiver.kind.rawValue) \(receiver.redactedURL))")
            }
        }
    }
}

/// The beat's alert watch, every 30 s: schedule entries against their alert_after,
/// databases against the receivers' backup_max_age, dead-job alerts whose jobs are gone.
struct AlertWatch: Service {
    let alerting: Alerting
    let schedule: Schedule
    let queue: RedisQueue
    let artefacts: ArtefactRows
    var interval: Duration = .seconds(30)

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            await check()
            try? await Task.sleep(for: interval)
        }
    }

    func check() async {
        for entry in schedule.entries {
            guard let state = try? await queue.beatState(entry: entry.name, queue: entry.queue) else { continue }
            await alerting.apply(AlertRules.schedule(entry: entry.name, alertAfter: entry.alertAfter, reference: state.lastSuccess ?? state.since))
        }
        let backupAge = alerting.receivers.filter { $0.on.contains(.backupMissing) }.map(\.backupMaxAgeSeconds).max()
        let verifiedAge = alerting.receivers.filter { $0.on.contains(.verificationMissing) }.map(\.verificationMaxAgeSeconds).max()
        if backupAge != nil || verifiedAge != nil, let rows = try? await artefacts.rows() {
            let backups = rows.filter { $0.family == "backup" }
            // Databases a schedule entry of `kind` names, and any that has a backup.
            func databases(_ kind: String) -> [String] {
                var names = Set(backups.map(\.database))
                for entry in schedule.entries where entry.kind == kind {
                    if case .string(let name)? = entry.payload["database"] { names.insert(name) }
                }
                return names.sorted()
            }
            if let maxAge = backupAge {
                for database in databases("backup") {
                    let newest = backups.filter { $0.database == database }.map(\.finishedAt).max()
                    await alerting.apply(AlertRules.backup(database: database, newest: newest, maxAge: maxAge))
                }
            }
            if let maxAge = verifiedAge {
                for database in databases("verify-backup") {
                    let newest = backups.filter { $0.database == database && $0.verification == "passed" }.map(\.finishedAt).max()
                    await alerting.apply(AlertRules.verification(database: database, newestVerified: newest, maxAge: maxAge))
                }
            }
        }
        await alerting.resolveClearedDeadJobs()
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
