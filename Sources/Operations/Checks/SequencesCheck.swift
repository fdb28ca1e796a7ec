import Foundation

/// The fullest sequence against its maximum.
struct SequencesCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        let fullest = f.sequences.max { Double($0.lastValue) / Double($0.maxValue) < Double($1.lastValue) / Double($1.maxValue) }
        let share = fullest.map { Double($0.lastValue) / Double(max($0.maxValue, 1)) } ?? 0
        let status = HealthChecks.grade(share, t.sequenceWarning, t.sequenceCritical)
        return HealthCheck(name: "sequences", status: status,
                           value: fullest.map { String(format: "%@ (%@) at %.1f%% of its maximum (%lld of %lld)", $0.name, $0.type, share * 100, $0.lastValue, $0.maxValue) } ?? "none",
                           action: status == .ok ? nil : "move the column and its sequence to bigint before it runs out (inserts will fail)")
    }
}
