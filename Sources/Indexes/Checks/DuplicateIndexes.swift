import Foundation

/// Duplicates and prefixes: the same method and predicate, keys equal (a duplicate) or leading another index (redundant).
struct DuplicateIndexes: IndexCheck {
    func findings(_ catalog: IndexCatalog, _ thresholds: IndexChecks.Thresholds, dropped: inout Set<String>) -> [IndexFinding] {
        var out: [IndexFinding] = []
        let byTable = Dictionary(grouping: catalog.indexes.filter(\.valid), by: \.qualifiedTable)
        for (table, indexes) in byTable.sorted(by: { $0.key < $1.key }) {
            let sorted = indexes.sorted { ($0.constraint == nil ? 1 : 0, $0.unique ? 0 : 1, $0.keys.count, $0.name) > ($1.constraint == nil ? 1 : 0, $1.unique ? 0 : 1, $1.keys.count, $1.name) }
            for a in sorted where a.constraint == nil && !dropped.contains(a.qualifiedName) {
                for b in indexes where b.name != a.name && !dropped.contains(b.qualifiedName) && b.method == a.method && b.predicate == a.predicate {
                    if a.keys == b.keys && a.include == b.include && (!a.unique || b.unique) {
                        out.append(IndexFinding(kind: .duplicate, priority: .high, table: table, index: a.qualifiedName,
                                                reason: "the same as \(b.qualifiedName) (\(a.keys.joined(separator: ", ")))\(b.constraint.map { ", which backs constraint \($0)" } ?? ""): one of them is enough",
                                                sql: "DROP INDEX CONCURRENTLY \(IndexChecks.quote(a.schema)).\(IndexChecks.quote(a.name))"))
                        dropped.insert(a.qualifiedName)
                        break
                    }
                    if !a.unique, a.method == "btree", a.keys.count < b.keys.count, Array(b.keys.prefix(a.keys.count)) == a.keys, a.include.isEmpty {
                        out.append(IndexFinding(kind: .redundant, priority: .medium, table: table, index: a.qualifiedName,
                                                reason: "its columns (\(a.keys.joined(separator: ", "))) lead \(b.qualifiedName) (\(b.keys.joined(separator: ", "))), which serves the same lookups",
                                                sql: "DROP INDEX CONCURRENTLY \(IndexChecks.quote(a.schema)).\(IndexChecks.quote(a.name))"))
                        dropped.insert(a.qualifiedName)
                        break
                    }
                }
            }
        }

        return out
    }
}
