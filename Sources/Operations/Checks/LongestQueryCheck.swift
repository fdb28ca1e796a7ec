import Foundation

/// The longest running query.
struct LongestQueryCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let query = f.longestQuery
        let status = query.map { HealthChecks.grade($0.seconds, t.queryWarning, t.queryCritical) } ?? .ok
        return HealthCheck(name: "longest-query", status: status, value: query.map { "pid \($0.pid), \(HealthChecks.minutes($0.seconds)): \($0.query.prefix(80))" } ?? "none",
                           action: status == .ok ? nil : "look at its plan; pg_cancel_backend(pid) if it must stop; set statement_timeout")
    }
}
