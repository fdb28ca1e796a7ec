import Foundation

/// Sessions idle inside a transaction, by the longest.
struct IdleInTransactionCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let idle = f.idleInTransaction.max { $0.seconds < $1.seconds }
        let status = idle.map { HealthChecks.grade($0.seconds, t.idleInTransactionWarning, t.idleInTransactionCritical) } ?? .ok
        return HealthCheck(name: "idle-in-transaction", status: status,
                           value: idle.map { "\(f.idleInTransaction.count) session(s); the longest, pid \($0.pid), for \(HealthChecks.minutes($0.seconds)): \($0.query.prefix(80))" } ?? "none",
                           action: status == .ok ? nil : "fix the application that leaves transactions open; meanwhile pg_terminate_backend(pid) or idle_in_transaction_session_timeout")
    }
}
