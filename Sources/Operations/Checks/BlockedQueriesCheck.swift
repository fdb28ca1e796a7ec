import Foundation

/// Queries waiting on a lock, with the chain of sessions that block the longest one.
struct BlockedQueriesCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let worst = f.blocked.max { $0.seconds < $1.seconds }
        let status = worst.map { HealthChecks.grade($0.seconds, t.blockedWarning, t.blockedCritical) } ?? .ok
        return HealthCheck(name: "blocked-queries", status: status,
                           value: worst.map { b in "\(f.blocked.count) blocked; pid \(b.pid) for \(HealthChecks.minutes(b.seconds)) (\(b.query.prefix(60))) waits for "
                               + b.blockers.map { "pid \($0.pid) (\($0.query.prefix(60)))" }.joined(separator: " ← ") } ?? "none",
                           action: status == .ok ? nil : "end the first blocker of the chain (pg_terminate_backend) or the transaction it belongs to")
    }
}
