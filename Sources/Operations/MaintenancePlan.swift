import DatabaseJobs
import Foundation

/// What maintenance knows of a table and an index, read from the statistics.
public struct TableVitals: Sendable, Equatable, Codable {
    public var schema: String
    public var name: String
    public var liveRows: Int64
    public var deadRows: Int64
    public var modifiedSinceAnalyze: Int64
    /// age(relfrozenxid): transactions since the table was last frozen.
    public var xidAge: Int64
    public var bytes: Int64
    public var qualifiedName: String { "\(schema).\(name)" }

    public init(schema: String, name: String, liveRows: Int64, deadRows: Int64, modifiedSinceAnalyze: Int64, xidAge: Int64, bytes: Int64 = 0) {
        self.schema = schema
        self.name = name
        self.liveRows = liveRows
        self.deadRows = deadRows
        self.modifiedSinceAnalyze = modifiedSinceAnalyze
        self.xidAge = xidAge
        self.bytes = bytes
    }
}

public struct IndexVitals: Sendable, Equatable, Codable {
    public var schema: String
    public var table: String
    public var name: String
    public var bytes: Int64
    /// The share of the index that is empty space (0…1).
    public var bloat: Double
    /// True when `pgstattuple` measured it; false for the statistical estimate.
    public var measured: Bool
    public var qualifiedName: String { "\(schema).\(name)" }

    public init(schema: String, table: String, name: String, bytes: Int64, bloat: Double, measured: Bool) {
        self.schema = schema
        self.table = table
        self.name = name
        self.bytes = bytes
        self.bloat = bloat
        self.measured = measured
    }
}

/// The maintenance a database needs, from its statistics alone. Pure.
public enum MaintenancePlan {
    public struct Thresholds: Sendable, Equatable, Codable {
        /// Tables whose transaction-id age passes this are frozen first, oldest first.
        public var freezeAge: Int64 = 150_000_000
        /// Dead rows: at least this share of the table and this many.
        public var deadRatio: Double = 0.1
        public var deadMinimum: Int64 = 1_000
        /// Rows modified since the last analyze: this share and this many.
        public var analyzeRatio: Double = 0.1
        public var analyzeMinimum: Int64 = 1_000
        /// Indexes with this share of empty space and at least this size are rebuilt.
        public var bloatRatio: Double = 0.3
        public var bloatMinimumBytes: Int64 = 10 << 20
        public init() {}
    }

    public struct Action: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable { case freeze, vacuum, analyze, reindex }
        public var kind: Kind
        /// `schema.table`, or `schema.index` for reindex.
        public var target: String
        public var table: String
        public var reason: String
        /// The statement (identifiers quoted).
        public var sql: String
    }

    public static func plan(tables: [TableVitals], indexes: [IndexVitals], thresholds: Thresholds = Thresholds()) -> [Action] {
        var actions: [Action] = []
        var done: Set<String> = []
        func q(_ s: String, _ n: String) -> String { "\(quote(s)).\(quote(n))" }
        func needsAnalyze(_ t: TableVitals) -> Bool {
            t.modifiedSinceAnalyze >= thresholds.analyzeMinimum && Double(t.modifiedSinceAnalyze) >= thresholds.analyzeRatio * Double(max(t.liveRows, 1))
        }
        for t in tables.filter({ $0.xidAge >= thresholds.freezeAge }).sorted(by: { ($0.xidAge, $1.qualifiedName) > ($1.xidAge, $0.qualifiedName) }) {
            let analyze = needsAnalyze(t)
            actions.append(Action(kind: .freeze, target: t.qualifiedName, table: t.qualifiedName,
                                  reason: "transaction-id age \(t.xidAge) ≥ \(thresholds.freezeAge): frozen before wraparound forces it",
                                  sql: "VACUUM (FREEZE\(analyze ? ", ANALYZE" : "")) \(q(t.schema, t.name))"))
            done.insert(t.qualifiedName)
        }
        for t in tables.filter({ !done.contains($0.qualifiedName) && $0.deadRows >= thresholds.deadMinimum
            && Double($0.deadRows) >= thresholds.deadRatio * Double(max($0.liveRows + $0.deadRows, 1)) })
            .sorted(by: { ($0.deadRows, $1.qualifiedName) > ($1.deadRows, $0.qualifiedName) }) {
            let share = Double(t.deadRows) / Double(max(t.liveRows + t.deadRows, 1))
            actions.append(Action(kind: .vacuum, target: t.qualifiedName, table: t.qualifiedName,
                                  reason: String(format: "%lld dead rows, %.0f%% of the table (thresholds %lld and %.0f%%)", t.deadRows, share * 100,
                                                 thresholds.deadMinimum, thresholds.deadRatio * 100),
                                  sql: "VACUUM (ANALYZE) \(q(t.schema, t.name))"))
            done.insert(t.qualifiedName)
        }
        for t in tables.filter({ !done.contains($0.qualifiedName) && needsAnalyze($0) })
            .sorted(by: { ($0.modifiedSinceAnalyze, $1.qualifiedName) > ($1.modifiedSinceAnalyze, $0.qualifiedName) }) {
            actions.append(Action(kind: .analyze, target: t.qualifiedName, table: t.qualifiedName,
                                  reason: "\(t.modifiedSinceAnalyze) rows modified since the last analyze (of \(t.liveRows))",
                                  sql: "ANALYZE \(q(t.schema, t.name))"))
        }
        for i in indexes.filter({ $0.bloat >= thresholds.bloatRatio && $0.bytes >= thresholds.bloatMinimumBytes })
            .sorted(by: { (Double($0.bytes) * $0.bloat, $1.qualifiedName) > (Double($1.bytes) * $1.bloat, $0.qualifiedName) }) {
            actions.append(Action(kind: .reindex, target: i.qualifiedName, table: "\(i.schema).\(i.table)",
                                  reason: String(format: "%.0f%% of its %.1f MiB is empty space (%@)", i.bloat * 100, Double(i.bytes) / 1_048_576,
                                                 i.measured ? "pgstattuple" : "statistical estimate"),
                                  sql: "REINDEX INDEX CONCURRENTLY \(q(i.schema, i.name))"))
        }
        return actions
    }

    static func quote(_ name: String) -> String {
        let plain = name.first.map { $0 == "_" || ($0.isLetter && $0.isLowercase) } == true
            && name.allSatisfy { $0 == "_" || $0.isNumber || ($0.isLetter && $0.isLowercase && $0.isASCII) }
        return plain ? name : "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Whether the budget leaves room to start another action.
    public static func withinBudget(elapsed: Double, budget: Double?) -> Bool {
        guard let budget else { return true }
        return elapsed < budget
    }
}
