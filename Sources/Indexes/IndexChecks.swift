import DatabaseJobs
import Foundation

/// One of pghero's checks, one file each under `Checks/`: findings from the catalog alone.
/// `dropped` holds the indexes earlier checks already propose to drop, so no index is
/// proposed twice (an invalid one is not also a duplicate).
protocol IndexCheck: Sendable {
    func findings(_ catalog: IndexCatalog, _ thresholds: IndexChecks.Thresholds, dropped: inout Set<String>) -> [IndexFinding]
}

/// pghero's checks, decided from an `IndexCatalog` alone. Pure.
public enum IndexChecks {
    /// In the order they run: later checks skip what earlier ones drop.
    static let all: [any IndexCheck] = [InvalidIndexes(), DuplicateIndexes(), UnusedIndexes(), UnindexedForeignKeys(), SequentialScans()]

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
        var dropped: Set<String> = []
        var out: [IndexFinding] = []
        for check in all { out += check.findings(catalog, thresholds, dropped: &dropped) }
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
