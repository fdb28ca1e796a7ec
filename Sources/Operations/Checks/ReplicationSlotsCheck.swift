import Foundation

/// WAL held by replication slots (an inactive one holds it forever).
struct ReplicationSlotsCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let slot = f.slots.max { $0.retainedBytes < $1.retainedBytes }
        let status = slot.map { HealthChecks.grade(Double($0.retainedBytes), Double(t.slotWarningBytes), Double(t.slotCriticalBytes)) } ?? .ok
        return HealthCheck(name: "replication-slots", status: status,
                           value: f.slots.isEmpty ? "none" : f.slots.map { "\($0.name)\($0.active ? "" : " (inactive)") holds \(HealthChecks.bytes($0.retainedBytes)) of WAL" }.joined(separator: ", "),
                           action: status == .ok ? nil : "an inactive slot keeps WAL forever: reconnect its consumer or pg_drop_replication_slot")
    }
}
