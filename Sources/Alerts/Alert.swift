import DBQConfig
import DBQSupport
import Foundation

/// A condition about one subject (a database, a schedule entry, a queue's kind), as it is
/// recorded while firing and told to receivers.
public struct Alert: Codable, Sendable, Equatable {
    public enum Severity: String, Codable, Sendable { case critical, warning }

    public var condition: AlertCondition
    /// What it is about: `main`, `nightly-backup`, `default/backup`.
    public var subject: String
    public var severity: Severity
    /// One line a person reads first.
    public var summary: String
    /// What was seen and what to do.
    public var details: String
    /// When it began firing (the first record's time stays while it fires).
    public var since: Date

    public init(condition: AlertCondition, subject: String, severity: Severity, summary: String, details: String, since: Date = Date()) {
        self.condition = condition
        self.subject = subject
        self.severity = severity
        self.summary = summary
        self.details = details
        self.since = since
    }

    /// One key per condition and subject: the unit of deduplication.
    public var key: String { "\(condition.rawValue):\(subject)" }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    public var json: String { String(decoding: (try? Self.encoder.encode(self)) ?? Data(), as: UTF8.self) }
    public static func decode(_ text: String) -> Alert? { try? decoder.decode(Alert.self, from: Data(text.utf8)) }
}

/// The messages sent, per receiver kind (pure: tested byte for byte).
public enum AlertMessage {
    public enum Status: String, Sendable { case firing, resolved, test }

    static func title(_ alert: Alert, _ status: Status) -> String {
        switch status {
        case .firing: "[dbq] \(alert.severity.rawValue.uppercased()): \(alert.summary)"
        case .resolved: "[dbq] RESOLVED: \(alert.summary)"
        case .test: "[dbq] TEST: \(alert.summary)"
        }
    }

    /// A generic webhook: one JSON object.
    public static func webhook(_ alert: Alert, status: Status, host: String, at: Date) -> [UInt8] {
        let body: JSONValue = .object([
            "source": .string("dbq"),
            "status": .string(status.rawValue),
            "key": .string(alert.key),
            "condition": .string(alert.condition.rawValue),
            "subject": .string(alert.subject),
            "severity": .string(alert.severity.rawValue),
            "summary": .string(alert.summary),
            "details": .string(alert.details),
            "since": .string(ISO8601DateFormatter().string(from: alert.since)),
            "at": .string(ISO8601DateFormatter().string(from: at)),
            "host": .string(host),
        ])
        return Array(body.jsonText.utf8)
    }

    /// A Slack-compatible incoming webhook (Mattermost, Rocket.Chat take the same): text.
    public static func slack(_ alert: Alert, status: Status, host: String, at: Date) -> [UInt8] {
        let mark = status == .resolved ? ":white_check_mark:" : alert.severity == .critical ? ":rotating_light:" : ":warning:"
        var text = "\(mark) *\(title(alert, status))*\n\(alert.details)"
        text += status == .resolved ? "\n_firing since \(ISO8601DateFormatter().string(from: alert.since)), resolved \(ISO8601DateFormatter().string(from: at))_"
                                    : "\n_since \(ISO8601DateFormatter().string(from: alert.since)), seen on \(host)_"
        return Array(JSONValue.object(["text": .string(text)]).jsonText.utf8)
    }

    /// An e-mail: headers, a blank line, the text.
    public static func email(_ alert: Alert, status: Status, from: String, to: [String], host: String, at: Date) -> String {
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.timeZone = TimeZone(identifier: "UTC")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let subject = title(alert, status).replacingOccurrences(of: "\n", with: " ")
        let domain = from.split(separator: "@").last.map(String.init) ?? "dbq"
        return [
            "From: dbq <\(from)>",
            "To: \(to.joined(separator: ", "))",
            "Subject: \(subject)",
            "Date: \(date.string(from: at))",
            "Message-ID: <\(UUID().uuidString.lowercased())@\(domain)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "X-DBQ-Alert: \(alert.key)",
            "X-DBQ-Status: \(status.rawValue)",
            "",
            subject,
            "",
            alert.details,
            "",
            "Condition: \(alert.condition.rawValue) (\(alert.subject))",
            "Severity:  \(alert.severity.rawValue)",
            "Since:     \(ISO8601DateFormatter().string(from: alert.since))",
            status == .resolved ? "Resolved:  \(ISO8601DateFormatter().string(from: at))" : "Seen on:   \(host)",
            "",
            "dbq alerts list shows what is firing.",
        ].joined(separator: "\n") + "\n"
    }
}
