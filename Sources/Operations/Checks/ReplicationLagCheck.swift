import Foundation

/// Replay lag of the replicas the primary sees.
struct ReplicationLagCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let lag = f.replicas.compactMap(\.lagSeconds).max()
        let status = lag.map { HealthChecks.grade($0, t.replicationLagWarning, t.replicationLagCritical) } ?? .ok
        return HealthCheck(name: "replication-lag", status: status,
                           value: f.replicas.isEmpty ? "no replicas" : f.replicas.map { "\($0.name) \($0.lagSeconds.map { HealthChecks.minutes($0) } ?? "?")" }.joined(separator: ", "),
                           action: status == .ok ? nil : "check the replica's disk, network and apply (long queries on it delay replay)")
    }
}
