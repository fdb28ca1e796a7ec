import Foundation

/// Indexes a failed concurrent build or reindex left INVALID: maintained by every write, used by no read.
struct InvalidIndexes: IndexCheck {
    func findings(_ catalog: IndexCatalog, _ thresholds: IndexChecks.Thresholds, dropped: inout Set<String>) -> [IndexFinding] {
        var out: [IndexFinding] = []
        for index in catalog.indexes where !index.valid {
            var finding = IndexFinding(kind: .invalid, priority: .high, table: index.qualifiedTable, index: index.qualifiedName,
                                       reason: "INVALID (a failed CREATE INDEX CONCURRENTLY or REINDEX left it): every write still maintains it, no read uses it",
                                       sql: "DROP INDEX CONCURRENTLY \(IndexChecks.quote(index.schema)).\(IndexChecks.quote(index.name))")
            if index.constraint == nil, !index.definition.isEmpty { finding.reason += "; rebuild it with dbq push reindex, or drop it" }
            out.append(finding)
            dropped.insert(index.qualifiedName)
        }

        return out
    }
}
