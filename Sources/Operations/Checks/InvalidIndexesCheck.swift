import Foundation

/// Indexes left INVALID (a failed concurrent build).
struct InvalidIndexesCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        HealthCheck(name: "invalid-indexes", status: f.invalidIndexes.isEmpty ? .ok : .warning,
                    value: f.invalidIndexes.isEmpty ? "none" : f.invalidIndexes.joined(separator: ", "),
                    action: f.invalidIndexes.isEmpty ? nil : "rebuild or drop them (dbq push reindex / drop-index): they cost writes and serve no reads")
    }
}
