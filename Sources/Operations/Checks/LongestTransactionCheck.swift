import Foundation

/// The longest open transaction (it holds back vacuum).
struct LongestTransactionCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let tx = f.longestTransaction
        let status = tx.map { HealthChecks.grade($0.seconds, t.transactionWarning, t.transactionCritical) } ?? .ok
        return HealthCheck(name: "longest-transaction", status: status, value: tx.map { "pid \($0.pid), \(HealthChecks.minutes($0.seconds)): \($0.query.prefix(80))" } ?? "none",
                           action: status == .ok ? nil : "a long transaction keeps vacuum from removing dead rows; end it or find why it runs")
    }
}
