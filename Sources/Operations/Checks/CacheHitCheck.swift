import Foundation

/// Share of reads served from shared buffers (none before any read).
struct CacheHitCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        guard let hit = f.cacheHit else { return nil }
        let status: HealthCheck.Status = hit < t.cacheHitWarning ? .warning : .ok
        return HealthCheck(name: "cache-hit", status: status, value: String(format: "%.2f%%", hit * 100),
                           action: status == .ok ? nil : "the working set does not fit shared_buffers and the OS cache: more memory, or fewer full scans")
    }
}
