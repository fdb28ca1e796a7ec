import DBQSupport
import Foundation

/// What an alert is about. Each is raised where it is seen and resolved when it clears.
public enum AlertCondition: String, Sendable, CaseIterable, Codable {
    /// A health job found something critical (the job fails), or a later one found nothing.
    case healthCritical = "health_critical"
    /// A health job's warnings.
    case healthWarning = "health_warning"
    /// A job went dead (all attempts used, or a permanent error); resolved when no dead job
    /// of that queue and kind is left.
    case jobDead = "job_dead"
    /// A schedule entry has not succeeded for longer than its `alert_after`.
    case scheduleLate = "schedule_late"
    /// No backup of a database finished within the receiver's `backup_max_age` (26 h).
    case backupMissing = "backup_missing"
    /// No backup of a database passed verification within `verification_max_age` (8 d).
    case verificationMissing = "verification_missing"
    /// The health job's archiving check is critical: archive_command failing, WAL waiting.
    case archivingFailing = "archiving_failing"
}

/// One receiver of `alerts:` in dbq.yaml: where messages go and which conditions it wants.
public struct AlertReceiver: Sendable, Equatable {
    public enum Kind: String, Sendable { case webhook, slack, email }
    public var name: String
    public var kind: Kind
    /// The webhook's URL, or the SMTP server's (`smtp://[user:password@]host:port`,
    /// `smtps://…`). Secret: shown only as `redactedURL`.
    public var url: String
    public var from: String?
    public var to: [String]
    /// STARTTLS required (e-mail): refuse to send in clear.
    public var requireTLS: Bool
    public var on: Set<AlertCondition>
    /// A condition still firing is told again after this long (default 4 h).
    public var repeatSeconds: Double
    /// For `backup_missing`: the newest backup may be this old (default 26 h).
    public var backupMaxAgeSeconds: Double
    /// For `verification_missing`: the newest verified backup may be this old (default 8 d).
    public var verificationMaxAgeSeconds: Double

    public init(name: String, kind: Kind, url: String, from: String? = nil, to: [String] = [], requireTLS: Bool = false,
                on: Set<AlertCondition>, repeatSeconds: Double = 4 * 3600, backupMaxAgeSeconds: Double = 26 * 3600,
                verificationMaxAgeSeconds: Double = 8 * 86_400) {
        self.name = name
        self.kind = kind
        self.url = url
        self.from = from
        self.to = to
        self.requireTLS = requireTLS
        self.on = on
        self.repeatSeconds = repeatSeconds
        self.backupMaxAgeSeconds = backupMaxAgeSeconds
        self.verificationMaxAgeSeconds = verificationMaxAgeSeconds
    }

    /// The URL as it may be shown: a webhook's path and query (where Slack and others keep
    /// the secret) and any password masked.
    public var redactedURL: String {
        guard let scheme = url.range(of: "://") else { return Redaction.mask }
        let rest = url[scheme.upperBound...]
        var host = rest.prefix { $0 != "/" && $0 != "?" }
        if let at = host.lastIndex(of: "@") {
            let user = host[..<at].prefix { $0 != ":" }
            host = Substring("\(user):\(Redaction.mask)@") + host[host.index(after: at)...]
        }
        let hasPath = rest.count > host.count
        return String(url[..<scheme.upperBound]) + host + (hasPath && kind != .email ? "/\(Redaction.mask)" : "")
    }

    /// `30s`, `15m`, `4h`, `2d`, `1w`.
    public static func duration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 7 * 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast()), n > 0 { return n * scale }
        }
        return nil
    }
}

extension ConfigurationParser {
    static let alertKeys: Set<String> = ["name", "webhook", "slack", "email", "on", "repeat", "backup_max_age", "verification_max_age"]
    static let emailKeys: Set<String> = ["smtp", "from", "to", "starttls"]

    /// `alerts:`: a list of receivers. A receiver's URL may come from
    /// `DBQ_ALERT_URL_<NAME>` instead (secrets out of the file).
    mutating func alerts() -> [AlertReceiver] {
        guard let raw = root["alerts"] else { return [] }
        guard let list = raw as? [Any] else {
            problems.append("alerts: must be a list of receivers ({name: ops, webhook: URL, on: [health_critical, job_dead]})")
            return []
        }
        var receivers: [AlertReceiver] = []
        for (index, item) in list.enumerated() {
            let path = "alerts[\(index)]"
            guard let fields = item as? [String: Any] else { problems.append("\(path): must be a mapping with name, one of webhook/slack/email, and on"); continue }
            for key in fields.keys.sorted() where !Self.alertKeys.contains(key) {
                problems.append("\(path).\(key): unknown key (expected one of: \(Self.alertKeys.sorted().joined(separator: ", ")))")
            }
            guard let name = fields["name"] as? String, DBQConfiguration.isName(name) else {
                problems.append("\(path).name: required; letters, digits, '-' and '_' only"); continue
            }
            let named = "alerts.\(name)"
            if receivers.contains(where: { $0.name == name }) { problems.append("\(named): the name is used twice") }
            let targets = ["webhook", "slack", "email"].filter { fields[$0] != nil }
            guard targets.count == 1, let kind = AlertReceiver.Kind(rawValue: targets[0]) else {
                problems.append("\(named): give exactly one of webhook: URL, slack: URL or email: {smtp: URL, from: ADDRESS, to: [ADDRESS]}"); continue
            }
            let override = env("DBQ_ALERT_URL_\(envName(name))")
            var url = "", from: String?, to: [String] = [], requireTLS = false
            switch kind {
            case .webhook, .slack:
                guard let text = override ?? fields[kind.rawValue] as? String else { problems.append("\(named).\(kind.rawValue): must be a URL"); continue }
                url = text
                if !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                    problems.append("\(named).\(kind.rawValue): '\(Redaction.url(url))' must start with https:// or http://")
                }
            case .email:
                guard let mail = fields["email"] as? [String: Any] else { problems.append("\(named).email: must be a mapping {smtp: URL, from: ADDRESS, to: [ADDRESS]}"); continue }
                for key in mail.keys.sorted() where !Self.emailKeys.contains(key) {
                    problems.append("\(named).email.\(key): unknown key (expected one of: \(Self.emailKeys.sorted().joined(separator: ", ")))")
                }
                url = override ?? (mail["smtp"] as? String) ?? ""
                if !(url.hasPrefix("smtp://") || url.hasPrefix("smtps://")) {
                    problems.append("\(named).email.smtp: '\(Redaction.url(url))' must be smtp://host:port or smtps://host:port")
                }
                from = mail["from"] as? String
                if from.map({ !$0.contains("@") }) ?? true { problems.append("\(named).email.from: required, an e-mail address") }
                if let one = mail["to"] as? String { to = [one] } else { to = (mail["to"] as? [Any])?.compactMap { $0 as? String } ?? [] }
                if to.isEmpty || to.contains(where: { !$0.contains("@") }) { problems.append("\(named).email.to: one or more e-mail addresses") }
                switch mail["starttls"] {
                case nil: requireTLS = false
                case let text as String where ["required", "optional"].contains(text): requireTLS = text == "required"
                default: problems.append("\(named).email.starttls: required or optional")
                }
            }
            var conditions: Set<AlertCondition> = []
            let rawOn: [Any] = (fields["on"] as? [Any]) ?? (fields["on"] as? String).map { [$0] } ?? []
            for value in rawOn {
                if let text = value as? String, let condition = AlertCondition(rawValue: text) { conditions.insert(condition) } else {
                    problems.append("\(named).on: '\(value)' is not one of \(AlertCondition.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            if rawOn.isEmpty { problems.append("\(named).on: required, a list of \(AlertCondition.allCases.map(\.rawValue).joined(separator: ", "))") }
            var repeatSeconds = 4.0 * 3600
            if let text = fields["repeat"] {
                if let text = text as? String, let seconds = AlertReceiver.duration(text), seconds >= 60 { repeatSeconds = seconds } else {
                    problems.append("\(named).repeat: '\(text)' is not a duration of a minute or more like 30m, 4h or 1d")
                }
            }
            var backupMaxAge = 26.0 * 3600
            if let text = fields["backup_max_age"] {
                if let text = text as? String, let seconds = AlertReceiver.duration(text) { backupMaxAge = seconds } else {
                    problems.append("\(named).backup_max_age: '\(text)' is not a duration like 26h or 2d")
                }
            }
            var verificationMaxAge = 8.0 * 86_400
            if let text = fields["verification_max_age"] {
                if let text = text as? String, let seconds = AlertReceiver.duration(text) { verificationMaxAge = seconds } else {
                    problems.append("\(named).verification_max_age: '\(text)' is not a duration like 8d or 2w")
                }
            }
            receivers.append(AlertReceiver(name: name, kind: kind, url: url, from: from, to: to, requireTLS: requireTLS, on: conditions,
                                           repeatSeconds: repeatSeconds, backupMaxAgeSeconds: backupMaxAge, verificationMaxAgeSeconds: verificationMaxAge))
        }
        return receivers
    }
}
