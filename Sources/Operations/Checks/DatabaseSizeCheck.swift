import Foundation

/// The database's size: a figure, never a finding.
struct DatabaseSizeCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        HealthCheck(name: "database-size", status: .ok, value: HealthChecks.bytes(f.databaseBytes), action: nil)
    }
}
