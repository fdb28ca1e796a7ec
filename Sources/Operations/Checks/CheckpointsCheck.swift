import Foundation

/// Checkpoints requested (WAL filled) against timed ones.
struct CheckpointsCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let checkpoints = f.checkpointsTimed + f.checkpointsRequested
        let requested = checkpoints == 0 ? 0 : Double(f.checkpointsRequested) / Double(checkpoints)
        let status: HealthCheck.Status = checkpoints >= 10 && requested > t.requestedCheckpointsWarning ? .warning : .ok
        return HealthCheck(name: "checkpoints", status: status,
                           value: "\(f.checkpointsRequested) requested, \(f.checkpointsTimed) timed",
                           action: status == .ok ? nil : "WAL fills before checkpoint_timeout: raise max_wal_size")
    }
}
