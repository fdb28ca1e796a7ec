import DBQConfig
import DBQSupport
import Foundation
import Queue

/// What to raise and what to resolve.
public struct AlertDecisions: Sendable, Equatable {
    public var raise: [Alert] = []
    public var resolve: [String] = []  // alert keys
    public init(raise: [Alert] = [], resolve: [String] = []) {
        self.raise = raise
        self.resolve = resolve
    }
}

/// The conditions, decided from what a process sees (pure: tested case by case).
public enum AlertRules {
    static func key(_ condition: AlertCondition, _ subject: String) -> String { "\(condition.rawValue):\(subject)" }

    /// After a worker finished a job: a dead job raises `job_dead` for its queue and kind;
    /// a health job raises or resolves `health_critical`, `archiving_failing` and
    /// `health_warning` for its database.
    public static func afterJob(_ job: FinishedJob, now: Date = Date()) -> AlertDecisions {
        var d = AlertDecisions()
        let database: String? = { if case .string(let name)? = job.payload?["database"] { return name }; return nil }()
        if job.kind == "health", let database {
            switch job.outcome {
            case .dead(let error):
                d.raise.append(Alert(condition: .healthCritical, subject: database, severity: .critical,
                                     summary: "health of \(database) is critical", details: error + "\nRun: dbq health --database \(database)", since: now))
                if error.contains("archiving:") {
                    d.raise.append(Alert(condition: .archivingFailing, subject: database, severity: .critical,
                                         summary: "WAL archiving of \(database) is failing", details: error + "\nRun: dbq wal status --database \(database)", since: now))
                } else {
                    d.resolve.append(key(.archivingFailing, database))
                }
            case .succeeded(let result):
                d.resolve.append(key(.healthCritical, database))
                d.resolve.append(key(.archivingFailing, database))
                let warnings = Self.warnings(result)
                if warnings.isEmpty {
                    d.resolve.append(key(.healthWarning, database))
                } else {
                    d.raise.append(Alert(condition: .healthWarning, subject: database, severity: .warning,
                                         summary: "health of \(database): \(warnings.count) warning\(warnings.count == 1 ? "" : "s")",
                                         details: warnings.joined(separator: "\n") + "\nRun: dbq health --database \(database)", since: now))
                }
            default: break
            }
            return d
        }
        if case .dead(let error) = job.outcome {
            let subject = "\(job.queue)/\(job.kind)"
            d.raise.append(Alert(condition: .jobDead, subject: subject, severity: .critical,
                                 summary: "a \(job.kind) job went dead in queue \(job.queue)" + (database.map { " (database \($0))" } ?? ""),
                                 details: "job \(job.id): \(error)\nRun: dbq dead list --queue \(job.queue); dbq dead retry \(job.id) once fixed", since: now))
        }
        return d
    }

    /// The warnings of a health report (`checks` with `status: warning`), one line each.
    static func warnings(_ result: JSONValue?) -> [String] {
        guard case .object(let fields)? = result, case .array(let checks)? = fields["checks"] else { return [] }
        return checks.compactMap { check -> String? in
            guard case .object(let c) = check, case .string("warning")? = c["status"], case .string(let name)? = c["name"] else { return nil }
            if case .string(let detail)? = c["detail"] { return "\(name): \(detail)" }
            return name
        }
    }

    /// A schedule entry against its own `alert_after`: `reference` is its last success, or
    /// when the beat first saw it.
    public static func schedule(entry: String, alertAfter: Double?, reference: Date?, now: Date = Date()) -> AlertDecisions {
        guard let alertAfter, let reference else { return AlertDecisions(resolve: [key(.scheduleLate, entry)]) }
        let late = now.timeIntervalSince(reference)
        guard late > alertAfter else { return AlertDecisions(resolve: [key(.scheduleLate, entry)]) }
        return AlertDecisions(raise: [Alert(condition: .scheduleLate, subject: entry, severity: .warning,
                                            summary: "schedule entry \(entry) has not succeeded for \(Self.span(late))",
                                            details: "Its alert_after is \(Self.span(alertAfter)). Run: dbq beat status; dbq jobs list --state dead",
                                            since: reference.addingTimeInterval(alertAfter))])
    }

    /// A database's newest backup against the largest age allowed.
    public static func backup(database: String, newest: Date?, maxAge: Double, now: Date = Date()) -> AlertDecisions {
        if let newest, now.timeIntervalSince(newest) <= maxAge { return AlertDecisions(resolve: [key(.backupMissing, database)]) }
        let age = newest.map { "its newest backup finished \(Self.span(now.timeIntervalSince($0))) ago" } ?? "it has no backup"
        return AlertDecisions(raise: [Alert(condition: .backupMissing, subject: database, severity: .critical,
                                            summary: "no backup of \(database) within \(Self.span(maxAge))",
                                            details: "\(age). Run: dbq backups list --database \(database); dbq beat status; dbq dead list",
                                            since: newest.map { $0.addingTimeInterval(maxAge) } ?? now)])
    }

    /// A database's newest verified backup against the largest age allowed.
    public static func verification(database: String, newestVerified: Date?, maxAge: Double, now: Date = Date()) -> AlertDecisions {
        if let newestVerified, now.timeIntervalSince(newestVerified) <= maxAge { return AlertDecisions(resolve: [key(.verificationMissing, database)]) }
        let age = newestVerified.map { "its newest verified backup finished \(Self.span(now.timeIntervalSince($0))) ago" } ?? "none of its backups has passed verification"
        return AlertDecisions(raise: [Alert(condition: .verificationMissing, subject: database, severity: .warning,
                                            summary: "no verified backup of \(database) within \(Self.span(maxAge))",
                                            details: "\(age). Run: dbq push verify-backup --database \(database) --wait; dbq backups list --database \(database)",
                                            since: newestVerified.map { $0.addingTimeInterval(maxAge) } ?? now)])
    }

    /// 90 s, 3 h 5 min, 2 d 4 h.
    static func span(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" + (s % 3600 >= 60 ? " \(s % 3600 / 60) min" : "") }
        return "\(s / 86_400) d" + (s % 86_400 >= 3600 ? " \(s % 86_400 / 3600) h" : "")
    }
}
