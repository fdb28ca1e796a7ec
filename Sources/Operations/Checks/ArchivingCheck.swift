import Foundation

/// WAL archiving (when it is on): a failing archive_command, or segments piling up in
/// pg_wal, leave point-in-time recovery behind the server and fill its disk.
struct ArchivingCheck: HealthRule {
    func check(_ f: HealthFacts, _ t: HealthChecks.Thresholds) -> HealthCheck? {
        guard let a = f.archiving else { return nil }
        let waiting = a.waiting ?? 0
        var status = HealthChecks.grade(Double(waiting), Double(t.archiveWaitingWarning), Double(t.archiveWaitingCritical))
        if a.failing { status = .critical }
        var value = "last archived \(a.lastArchivedWAL ?? "none")"
        if let s = a.secondsSinceArchived { value += " \(HealthChecks.minutes(s)) ago" }
        if let w = a.waiting { value += ", \(w) segment(s) waiting" }
        if a.failing { value += "; the last attempt FAILED (\(a.lastFailedWAL ?? "?"))" }
        return HealthCheck(name: "archiving", status: status, value: value,
                           action: status == .ok ? nil : "the archive_command is failing or slow: read the server log and dbq wal status; until it succeeds no restore reaches past \(a.lastArchivedWAL ?? "the last archived segment"), and pg_wal grows")
    }
}
