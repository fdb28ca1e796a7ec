import Foundation

/// Connections in use against `max_connections`, by state.
struct ConnectionsCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let used = f.connectionsByState.values.reduce(0, +)
        let share = Double(used) / Double(max(f.maxConnections, 1))
        let states = f.connectionsByState.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let status = HealthChecks.grade(share, t.connectionsWarning, t.connectionsCritical)
        return HealthCheck(name: "connections", status: status, value: String(format: "%d of %d (%.0f%%): %@", used, f.maxConnections, share * 100, states),
                           action: status == .ok ? nil : "find who holds them (idle ones first); put a pooler (PgBouncer) in front")
    }
}
