import Foundation

/// Indexes scanned rarely in statistics old enough to tell; never one that backs a constraint or enforces uniqueness.
struct UnusedIndexes: IndexCheck {
    func findings(_ catalog: IndexCatalog, _ thresholds: IndexChecks.Thresholds, dropped: inout Set<String>) -> [IndexFinding] {
        var out: [IndexFinding] = []
        let age = catalog.statsAgeSeconds
        let ageText = age.map(IndexChecks.duration) ?? "of unknown age"
        for index in catalog.indexes where index.valid && index.constraint == nil && !index.unique && !dropped.contains(index.qualifiedName)
            && index.scans <= thresholds.unusedScans {
            let table = catalog.table(index.qualifiedTable)
            let tableScans = (table?.seqScans ?? 0) + (table?.indexScans ?? 0)
            let oldEnough = age.map { $0 >= thresholds.minStatsAgeSeconds } ?? (tableScans >= 1000)
            if oldEnough, tableScans > 0 {
                out.append(IndexFinding(kind: .unused, priority: index.bytes >= 100 << 20 ? .high : .medium, table: index.qualifiedTable, index: index.qualifiedName,
                                        reason: "\(index.scans) scans in statistics \(ageText) old (the table was read \(tableScans) times); it costs \(IndexChecks.bytes(index.bytes)) and every write",
                                        sql: "DROP INDEX CONCURRENTLY \(IndexChecks.quote(index.schema)).\(IndexChecks.quote(index.name))"))
            } else {
                out.append(IndexFinding(kind: .unused, priority: .low, table: index.qualifiedTable, index: index.qualifiedName,
                                        reason: "too early to tell: \(index.scans) scans, but the statistics are \(ageText) old (a restore or a reset starts them at zero; wait \(IndexChecks.duration(thresholds.minStatsAgeSeconds)))"))
            }
        }

        return out
    }
}
