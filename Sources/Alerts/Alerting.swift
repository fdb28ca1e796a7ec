import DBQConfig
import DBQSupport
import Foundation
import Logging
import Metrics
import ObjectStorage
import Queue
import RedisQueue

/// Raises and resolves alerts for a fleet: the state is kept in Redis, so one message goes
/// to each receiver per condition and repeat interval however many processes see the
/// condition, and one resolution when it clears. Sending never blocks or fails the caller:
/// it runs in a task of its own, retried with backoff, failures counted and logged.
public final class Alerting: Sendable {
    public let receivers: [AlertReceiver]
    let queue: RedisQueue
    let logger: Logger
    let host: String
    /// Tries per message, with `backoff` between them.
    let attempts: Int
    let backoff: Backoff

    public init(receivers: [AlertReceiver], queue: RedisQueue, logger: Logger, host: String = ProcessInfo.processInfo.hostName,
                attempts: Int = 4, backoff: Backoff = Backoff(base: .seconds(1), cap: .seconds(30))) {
        self.receivers = receivers
        self.queue = queue
        self.logger = logger
        self.host = host
        self.attempts = attempts
        self.backoff = backoff
    }

    func interested(_ condition: AlertCondition) -> [AlertReceiver] { receivers.filter { $0.on.contains(condition) } }

    /// Records the alert as firing and tells the receivers due; the sending is awaited
    /// (callers that must not wait use `submit`).
    public func raise(_ alert: Alert) async {
        let wanted = interested(alert.condition)
        do {
            let (record, tell) = try await queue.alertRaise(key: alert.key, record: alert.json,
                                                            receivers: wanted.map { ($0.name, Int64($0.repeatSeconds * 1000)) })
            let firing = Alert.decode(record).map { var a = alert; a.since = $0.since; return a } ?? alert
            for receiver in wanted where tell.contains(receiver.name) { await deliver(firing, .firing, to: receiver) }
        } catch {
            logger.warning("alert not recorded: Redis failed", metadata: ["alert": "\(alert.key)", "error": "\(error)"])
        }
    }

    /// Resolves the alert if it fires; the receivers that were told of it hear it cleared.
    public func resolve(key: String) async {
        guard let condition = AlertCondition(rawValue: String(key.prefix { $0 != ":" })) else { return }
        do {
            guard let (record, tell) = try await queue.alertResolve(key: key, receivers: interested(condition).map(\.name)),
                  let alert = Alert.decode(record) else { return }
            for receiver in receivers where tell.contains(receiver.name) { await deliver(alert, .resolved, to: receiver) }
        } catch {
            logger.warning("alert not resolved: Redis failed", metadata: ["alert": "\(key)", "error": "\(error)"])
        }
    }

    public func apply(_ decisions: AlertDecisions) async {
        for alert in decisions.raise { await raise(alert) }
        for key in decisions.resolve { await resolve(key: key) }
    }

    /// For a worker: decides and sends in a task of its own, the job's end not delayed.
    public func submit(_ job: FinishedJob) {
        let decisions = AlertRules.afterJob(job)
        guard !decisions.raise.isEmpty || !decisions.resolve.isEmpty else { return }
        Task { await self.apply(decisions) }
    }

    /// What fires now, oldest first.
    public func firing() async throws -> [Alert] {
        try await queue.alertsFiring().values.compactMap(Alert.decode).sorted { $0.since < $1.since }
    }

    /// `job_dead` alerts whose queue holds no dead job of their kind any more are resolved.
    public func resolveClearedDeadJobs() async {
        guard let firing = try? await firing() else { return }
        for alert in firing where alert.condition == .jobDead {
            let parts = alert.subject.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2, let dead = try? await queue.hasDead(queue: parts[0], kind: parts[1]), !dead else { continue }
            await resolve(key: alert.key)
        }
    }

    /// Sends a test message to one receiver now, past every gate; throws what failed.
    public func test(_ receiver: AlertReceiver) async throws {
        let alert = Alert(condition: .healthWarning, subject: "test", severity: .warning, summary: "test message from dbq to \(receiver.name)",
                          details: "If you read this, alerts reach \(receiver.name) (\(receiver.kind.rawValue)).")
        try await send(alert, .test, to: receiver)
    }

    /// Sends with retries; a failure is counted and logged, never thrown.
    func deliver(_ alert: Alert, _ status: AlertMessage.Status, to receiver: AlertReceiver) async {
        var last = ""
        for attempt in 1...max(1, attempts) {
            do {
                try await send(alert, status, to: receiver)
                Counter(label: "dbq_alert_messages_total", dimensions: [("receiver", receiver.name), ("outcome", "sent")]).increment()
                logger.info("alert sent", metadata: ["alert": "\(alert.key)", "status": "\(status.rawValue)", "receiver": "\(receiver.name)"])
                return
            } catch {
                last = "\(error)"
                if attempt < attempts { try? await Task.sleep(for: backoff.delay(attempt: attempt)) }
            }
        }
        Counter(label: "dbq_alert_messages_total", dimensions: [("receiver", receiver.name), ("outcome", "failed")]).increment()
        logger.error("alert not delivered", metadata: ["alert": "\(alert.key)", "receiver": "\(receiver.name)", "url": "\(receiver.redactedURL)",
                                                      "attempts": "\(attempts)", "error": "\(Redaction.scrub(last, secrets: [receiver.url]))"])
    }

    func send(_ alert: Alert, _ status: AlertMessage.Status, to receiver: AlertReceiver) async throws {
        let now = Date()
        switch receiver.kind {
        case .webhook, .slack:
            let body = receiver.kind == .slack ? AlertMessage.slack(alert, status: status, host: host, at: now)
                                               : AlertMessage.webhook(alert, status: status, host: host, at: now)
            let url = receiver.url
            let response: PlainHTTP.Response
            do {
                response = try await BlockingLane.detached(label: "dbq.alerts") {
                    try PlainHTTP.send("POST", url: url, headers: [("Content-Type", "application/json")], body: body, timeout: .seconds(10))
                }
            } catch {
                throw PlainHTTP.Failure(description: "\(error)".replacingOccurrences(of: url, with: receiver.redactedURL))
            }
            guard (200..<300).contains(response.status) else {
                throw PlainHTTP.Failure(description: "\(receiver.redactedURL) answered HTTP \(response.status)")
            }
        case .email:
            let message = AlertMessage.email(alert, status: status, from: receiver.from ?? "dbq@localhost", to: receiver.to, host: host, at: now)
            let (url, from, to, tls) = (receiver.url, receiver.from ?? "dbq@localhost", receiver.to, receiver.requireTLS)
            do {
                try await BlockingLane.detached(label: "dbq.alerts") {
                    try SMTPMail.send(url: url, from: from, to: to, message: message, requireTLS: tls)
                }
            } catch {
                throw PlainHTTP.Failure(description: Redaction.scrub("\(error)", secrets: [url]).replacingOccurrences(of: url, with: receiver.redactedURL))
            }
        }
    }
}
