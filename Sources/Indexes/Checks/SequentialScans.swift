import Foundation

/// Tables read mostly by sequential scans (pghero's "missing indexes"): a heuristic, the workload advice names columns.
struct SequentialScans: IndexCheck {
    func findings(_ catalog: IndexCatalog, _ thresholds: IndexChecks.Thresholds, dropped: inout Set<String>) -> [IndexFinding] {
        var out: [IndexFinding] = []
        for table in catalog.tables where !table.partitioned && table.liveRows >= thresholds.minRows && table.seqScans > 0 {
            let share = Double(table.indexScans) / Double(table.seqScans + table.indexScans)
            guard share < thresholds.indexScanShare else { continue }
            out.append(IndexFinding(kind: .sequentialScans, priority: share < 0.5 ? .medium : .low, table: table.qualifiedName,
                                    reason: String(format: "%.0f%% of %lld scans use an index on %lld rows; the workload advice says which columns would help", share * 100, table.seqScans + table.indexScans, table.liveRows),
                                    heuristic: true))
        }
        return out
    }
}
