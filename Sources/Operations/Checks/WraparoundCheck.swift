import Foundation

/// Transaction ids left before the server stops accepting writes.
struct WraparoundCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let left = HealthChecks.wraparoundLimit - f.xidAge
        let status: HealthCheck.Status = left <= t.wraparoundCritical ? .critical : left <= t.wraparoundWarning ? .warning : f.xidAge > f.freezeMaxAge * 2 ? .warning : .ok
        return HealthCheck(name: "wraparound", status: status,
                           value: "\(left) transaction ids left before writes stop (age \(f.xidAge); autovacuum_freeze_max_age \(f.freezeMaxAge))",
                           action: status == .ok ? nil : "VACUUM (FREEZE) the oldest tables now (dbq push maintenance does them first); end long transactions that hold it back")
    }
}
