import Foundation

/// Foreign keys whose referencing columns lead no index: every delete or key update of the referenced table scans this one.
struct UnindexedForeignKeys: IndexCheck {
    func findings(_ catalog: IndexCatalog, _ thresholds: IndexChecks.Thresholds, dropped: inout Set<String>) -> [IndexFinding] {
        var out: [IndexFinding] = []
        for fk in catalog.foreignKeys where !catalog.covered(fk.qualifiedTable, leading: fk.columns) {
            let rows = catalog.table(fk.qualifiedTable)?.liveRows ?? 0
            let columns = fk.columns.map(IndexCatalog.quotedIfNeeded).joined(separator: ", ")
            var finding = IndexFinding(kind: .unindexedForeignKey, priority: rows >= thresholds.minRows ? .high : .low, table: fk.qualifiedTable,
                                       reason: "foreign key \(fk.name) (\(fk.columns.joined(separator: ", ")) → \(fk.referenced)) has no index leading with its columns: each delete or key change in \(fk.referenced) scans \(fk.qualifiedTable) (\(rows) rows)",
                                       sql: "CREATE INDEX CONCURRENTLY ON \(IndexChecks.quote(fk.schema)).\(IndexChecks.quote(fk.table)) (\(columns))")
            finding.columns = fk.columns
            out.append(finding)
        }

        return out
    }
}
