/// A k-anonymity requirement on one table: after masking, every combination of the
/// quasi-identifier columns occurs in at least `k` exported rows.
///
/// ```yaml
/// k_anonymity:
///   public.customers: {quasi_identifiers: [born, zip], k: 5}            # refuse the export
///   public.patients:  {quasi_identifiers: [age, city], k: 10, mode: report}
/// ```
public struct KAnonymityRequirement: Sendable, Equatable {
    public enum Mode: String, Sendable, Codable { case refuse, report }
    public var table: String
    public var columns: [String]
    public var k: Int
    public var mode: Mode
    public var path: String

    /// A table with more distinct combinations than this cannot be checked in bounded
    /// memory; the export is refused, asking for coarser quasi-identifiers.
    public static let maximumGroups = 200_000
}

/// Counts the combinations of quasi-identifier values, after masking, of one table's
/// exported rows. Memory grows with the number of distinct combinations (bounded by
/// `KAnonymityRequirement.maximumGroups`), never with the rows.
public final class KAnonymityGroups: @unchecked Sendable {
    // @unchecked Sendable: fed by one export pipe, one row at a time, on its lane.
    public let requirement: KAnonymityRequirement
    let indexes: [Int]
    private var counts: [String: Int] = [:]
    private(set) public var rows: Int64 = 0
    private(set) public var overflowed = false

    public init(_ requirement: KAnonymityRequirement, columns: [String]) {
        self.requirement = requirement
        indexes = requirement.columns.compactMap { columns.firstIndex(of: $0) }
    }

    /// One row's fields, masked.
    public func observe(_ fields: [String?]) {
        rows += 1
        if overflowed { return }
        var key = ""
        for i in indexes {
            key += fields[i].map { "v" + $0 } ?? "n"
            key += "\u{1F}"
        }
        counts[key, default: 0] += 1
        if counts.count > KAnonymityRequirement.maximumGroups {
            overflowed = true
            counts = [:]
        }
    }

    public struct Outcome: Codable, Sendable, Equatable {
        public var table: String
        public var quasiIdentifiers: [String]
        public var k: Int
        public var mode: KAnonymityRequirement.Mode
        public var rows: Int64
        public var groups: Int
        /// Groups with fewer than k rows, and the rows in them.
        public var groupsBelowK: Int
        public var rowsBelowK: Int64
        /// The smallest group's size. Its values are never kept or shown: a quasi-identifier
        /// kept as it is would put originals in a message, a log or the manifest.
        public var smallestGroupSize: Int
        public var passed: Bool
    }

    /// The result over every row seen; an error when the table has too many combinations.
    public func outcome() throws(AnonymizationError) -> Outcome {
        let r = requirement
        if overflowed {
            throw AnonymizationError("\(r.path): more than \(KAnonymityRequirement.maximumGroups) distinct combinations of \(r.columns.joined(separator: ", ")) in \(r.table): k-anonymity cannot hold; generalize them further (e.g. born: {rule: generalize, to: year}, zip: {rule: mask, keep_first: 2})")
        }
        var below = 0, rowsBelow: Int64 = 0
        var smallest: (key: String, count: Int)?
        for (key, count) in counts {
            if count < r.k { below += 1; rowsBelow += Int64(count) }
            if smallest == nil || count < smallest!.count || (count == smallest!.count && key < smallest!.key) { smallest = (key, count) }
        }
        return Outcome(table: r.table, quasiIdentifiers: r.columns, k: r.k, mode: r.mode, rows: rows, groups: counts.count,
                       groupsBelowK: below, rowsBelowK: rowsBelow, smallestGroupSize: smallest?.count ?? 0, passed: below == 0)
    }
}

extension KAnonymityGroups.Outcome {
    /// How far the table is from k, by counts only (never a group's values).
    public var summary: String {
        "\(table): \(groupsBelowK) of \(groups) combinations of (\(quasiIdentifiers.joined(separator: ", "))) occur fewer than \(k) times (\(rowsBelowK) of \(rows) rows); the smallest occurs \(smallestGroupSize) time(s)"
    }
}
