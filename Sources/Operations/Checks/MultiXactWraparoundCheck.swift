import Foundation

/// MultiXact ids left before the server stops accepting writes (they wrap like
/// transaction ids; heavy use of shared row locks and foreign keys consumes them).
struct MultiXactWraparoundCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let left = HealthChecks.wraparoundLimit - f.multixactAge
        let status: HealthCheck.Status = left <= t.wraparoundCritical ? .critical : left <= t.wraparoundWarning ? .warning : .ok
        return HealthCheck(name: "multixact-wraparound", status: status,
                           value: "\(left) MultiXact ids left before writes stop (age \(f.multixactAge))",
                           action: status == .ok ? nil : "VACUUM (FREEZE) the oldest tables now; look for long transactions holding shared row locks")
    }
}
