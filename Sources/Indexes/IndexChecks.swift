import DatabaseJobs
import Foundation

/// pghero's checks, decided from an `IndexCatalog` alone. Pure.
public enum IndexChecks {
    public struct Thresholds: Sendable, Equatable {
        /// An index scanned at most this often is unused (pghero: 50).
        public var unusedScans: Int64 = 50
        /// Tables smaller than this are not worth an index finding (pghero: 10,000 rows).
        public var minRows: Int64 = 10_000
        /// A table whose share of index scans is below this is read mostly sequentially (pghero: 95%).
        public var indexScanShare: Double = 0.95
        /// Statistics younger than this cannot tell an unused index (a fresh restore, a reset).
        public var minStatsAgeSeconds: Double = 7 * 86_400
        public init() {}
    }

    public static func findings(_ catalog: IndexCatalog, thresholds: Thresholds = Thresholds()) -> [IndexFinding] {
        var out: [IndexFinding] = []
        let age = catalog.statsAgeSeconds
        let ageText = age.map(Self.duration) ?? "of unknown age"
        var dropped: Set<String> = []

        for index in catalog.indexes where !index.valid {
            var finding = IndexFinding(kind: .invalid, priority: .high, table: index.qualifiedTable, index: index.qualifiedName,
                                       reason: "INVALID (a failed CREATE INDEX CONCURRENTLY or REINDEX left it): every write still maintains it, no read uses it",
                                       sql: "DROP INDEX CONCURRENTLY \(quote(index.schema)).\(quote(index.name))")
            if index.constraint == nil, !index.definition.isEmpty { finding.reason += "; rebuild it with dbq push reindex, or drop it" }
            out.append(finding)
            dropped.insert(index.qualifiedName)
        }

        // Duplicates and prefixes: the same method and predicate, keys equal or a prefix.
        let byTable = Dictionary(grouping: catalog.indexes.filter(\.valid), by: \.qualifiedTable)
        for (table, indexes) in byTable.sorted(by: { $0.key < $1.key }) {
            let sorted = indexes.sorted { ($0.constraint == nil ? 1 : 0, $0.unique ? 0 : 1, $0.keys.count, $0.name) > ($1.constraint == nil ? 1 : 0, $1.unique ? 0 : 1, $1.keys.count, $1.name) }
            for a in sorted where a.constraint == nil && !dropped.contains(a.qualifiedName) {
                for b in indexes where b.name != a.name && !dropped.contains(b.qualifiedName) && b.method == a.method && b.predicate == a.predicate {
                    if a.keys == b.keys && a.include == b.include && (!a.unique || b.unique) {
                        out.append(IndexFinding(kind: .duplicate, priority: .high, table: table, index: a.qualifiedName,
                                                reason: "the same as \(b.qualifiedName) (\(a.keys.joined(separator: ", ")))\(b.constraint.map { ", which backs constraint \($0)" } ?? ""): one of them is enough",
                                                sql: "DROP INDEX CONCURRENTLY \(quote(a.schema)).\(quote(a.name))"))
                        dropped.insert(a.qualifiedName)
                        break
                    }
                    if !a.unique, a.method == "btree", a.keys.count < b.keys.count, Array(b.keys.prefix(a.keys.count)) == a.keys, a.include.isEmpty {
                        out.append(IndexFinding(kind: .redundant, priority: .medium, table: table, index: a.qualifiedName,
                                                reason: "its columns (\(a.keys.joined(separator: ", "))) lead \(b.qualifiedName) (\(b.keys.joined(separator: ", "))), which serves the same lookups",
                                                sql: "DROP INDEX CONCURRENTLY \(quote(a.schema)).\(quote(a.name))"))
                        dropped.insert(a.qualifiedName)
                        break
                    }
                }
            }
        }

        // Unused: never one that backs a constraint or enforces uniqueness.
        for index in catalog.indexes where index.valid && index.constraint == nil && !index.unique && !dropped.contains(index.qualifiedName)
            && index.scans <= thresholds.unusedScans {
            let table = catalog.table(index.qualifiedTable)
            let tableScans = (table?.seqScans ?? 0) + (table?.indexScans ?? 0)
            let oldEnough = age.map { $0 >= thresholds.minStatsAgeSeconds } ?? (tableScans >= 1000)
            if oldEnough, tableScans > 0 {
                out.append(IndexFinding(kind: .unused, priority: index.bytes >= 100 << 20 ? .high : .medium, table: index.qualifiedTable, index: index.qualifiedName,
                                        reason: "\(index.scans) scans in statistics \(ageText) old (the table was read \(tableScans) times); it costs \(bytes(index.bytes)) and every write",
                                        sql: "DROP INDEX CONCURRENTLY \(quote(index.schema)).\(quote(index.name))"))
            } else {
                out.append(IndexFinding(kind: .unused, priority: .low, table: index.qualifiedTable, index: index.qualifiedName,
                                        reason: "too early to tell: \(index.scans) scans, but the statistics are \(ageText) old (a restore or a reset starts them at zero; wait \(duration(thresholds.minStatsAgeSeconds)))"))
            }
        }

        // Foreign keys whose referencing columns lead no index: every delete or key update
        // of the referenced table scans this one.
        for fk in catalog.foreignKeys where !catalog.covered(fk.qualifiedTable, leading: fk.columns) {
            let rows = catalog.table(fk.qualifiedTable)?.liveRows ?? 0
            let columns = fk.columns.map(IndexCatalog.quotedIfNeeded).joined(separator: ", ")
            var finding = IndexFinding(kind: .unindexedForeignKey, priority: rows >= thresholds.minRows ? .high : .low, table: fk.qualifiedTable,
                                       reason: "foreign key \(fk.name) (\(fk.columns.joined(separator: ", ")) → \(fk.referenced)) has no index leading with its columns: each delete or key change in \(fk.referenced) scans \(fk.qualifiedTable) (\(rows) rows)",
                                       sql: "CREATE INDEX CONCURRENTLY ON \(quote(fk.schema)).\(quote(fk.table)) (\(columns))")
            finding.columns = fk.columns
            out.append(finding)
        }

        // Tables read mostly by sequential scans (pghero's "missing indexes").
        for table in catalog.tables where !table.partitioned && table.liveRows >= thresholds.minRows && table.seqScans > 0 {
            let share = Double(table.indexScans) / Double(table.seqScans + table.indexScans)
            guard share < thresholds.indexScanShare else { continue }
            out.append(IndexFinding(kind: .sequentialScans, priority: share < 0.5 ? .medium : .low, table: table.qualifiedName,
                                    reason: String(format: "%.0f%% of %lld scans use an index on %lld rows; the workload advice says which columns would help", share * 100, table.seqScans + table.indexScans, table.liveRows),
                                    heuristic: true))
        }
        return out.sorted { ($0.priority, $0.kind.rawValue, $0.table, $0.index ?? "") < ($1.priority, $1.kind.rawValue, $1.table, $1.index ?? "") }
    }

    static func quote(_ name: String) -> String { IndexCatalog.quotedIfNeeded(name) }

    static func duration(_ seconds: Double) -> String {
        if seconds >= 2 * 86_400 { return String(format: "%.0f days", seconds / 86_400) }
        if seconds >= 2 * 3600 { return String(format: "%.0f hours", seconds / 3600) }
        return String(format: "%.0f minutes", seconds / 60)
    }

    static func bytes(_ count: Int64) -> String {
        count >= 1 << 20 ? String(format: "%.1f MiB", Double(count) / 1_048_576) : String(format: "%.0f KiB", Double(count) / 1024)
    }
}
