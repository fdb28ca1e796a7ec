import DatabaseJobs
import Foundation
import PostgresClient

/// What index advice knows about a database: its indexes, tables, foreign keys and how old
/// its statistics are. Read by `IndexCatalogQuery`; every decision on it is pure.
public struct IndexCatalog: Sendable, Equatable {
    public struct Index: Sendable, Equatable {
        public var schema: String
        public var table: String
        public var name: String
        public var method: String
        /// Key columns or expressions, in order (as `pg_get_indexdef` prints each).
        public var keys: [String]
        public var include: [String]
        public var predicate: String?
        public var unique: Bool
        /// Backs a primary-key, unique or exclusion constraint: never proposed for dropping.
        public var constraint: String?
        public var valid: Bool
        public var scans: Int64
        public var bytes: Int64
        public var definition: String
        public var qualifiedName: String { "\(schema).\(name)" }
        public var qualifiedTable: String { "\(schema).\(table)" }

        public init(schema: String, table: String, name: String, method: String = "btree", keys: [String], include: [String] = [],
                    predicate: String? = nil, unique: Bool = false, constraint: String? = nil, valid: Bool = true, scans: Int64 = 0,
                    bytes: Int64 = 0, definition: String = "") {
            self.schema = schema
            self.table = table
            self.name = name
            self.method = method
            self.keys = keys
            self.include = include
            self.predicate = predicate
            self.unique = unique
            self.constraint = constraint
            self.valid = valid
            self.scans = scans
            self.bytes = bytes
            self.definition = definition
        }
    }

    public struct Table: Sendable, Equatable {
        public var schema: String
        public var name: String
        public var columns: [String]
        public var liveRows: Int64
        public var seqScans: Int64
        public var indexScans: Int64
        /// Rows inserted, updated and deleted since the statistics were reset.
        public var writes: Int64
        public var bytes: Int64
        public var partitioned: Bool
        public var qualifiedName: String { "\(schema).\(name)" }

        public init(schema: String, name: String, columns: [String] = [], liveRows: Int64 = 0, seqScans: Int64 = 0, indexScans: Int64 = 0,
                    writes: Int64 = 0, bytes: Int64 = 0, partitioned: Bool = false) {
            self.schema = schema
            self.name = name
            self.columns = columns
            self.liveRows = liveRows
            self.seqScans = seqScans
            self.indexScans = indexScans
            self.writes = writes
            self.bytes = bytes
            self.partitioned = partitioned
        }
    }

    public struct ForeignKey: Sendable, Equatable {
        public var schema: String
        public var table: String
        public var name: String
        public var columns: [String]
        public var referenced: String
        public var qualifiedTable: String { "\(schema).\(table)" }

        public init(schema: String, table: String, name: String, columns: [String], referenced: String) {
            self.schema = schema
            self.table = table
            self.name = name
            self.columns = columns
            self.referenced = referenced
        }
    }

    public var indexes: [Index]
    public var tables: [Table]
    public var foreignKeys: [ForeignKey]
    /// Seconds since the statistics were reset (nil: unknown).
    public var statsAgeSeconds: Double?

    public init(indexes: [Index], tables: [Table], foreignKeys: [ForeignKey], statsAgeSeconds: Double?) {
        self.indexes = indexes
        self.tables = tables
        self.foreignKeys = foreignKeys
        self.statsAgeSeconds = statsAgeSeconds
    }

    public func table(_ qualified: String) -> Table? { tables.first { $0.qualifiedName == qualified } }
    public func indexes(on qualified: String) -> [Index] { indexes.filter { $0.qualifiedTable == qualified } }

    /// Whether a valid btree index of `table` starts with exactly these columns (in any
    /// order within the prefix: equality on each can use it).
    public func covered(_ table: String, leading columns: [String]) -> Bool {
        indexes(on: table).contains { index in
            index.valid && index.predicate == nil && index.keys.count >= columns.count
                && Set(index.keys.prefix(columns.count).map(IndexKey.column)) == Set(columns.map(Optional.some))
        }
    }

    /// A column as `pg_get_indexdef` prints it: quoted only when it must be (keywords too).
    public static func quotedIfNeeded(_ name: String) -> String { PostgresIdentifier.minimallyQuoted(name) }
}

/// One piece of advice: what, where, why, how urgent, and the statement that acts on it.
public struct IndexFinding: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case missing, invalid, unused, duplicate, redundant
        case unindexedForeignKey = "unindexed-foreign-key"
        case sequentialScans = "sequential-scans"
    }
    public enum Priority: String, Sendable, Codable, Comparable {
        case high, medium, low
        var rank: Int { self == .high ? 0 : self == .medium ? 1 : 2 }
        public static func < (a: Priority, b: Priority) -> Bool { a.rank < b.rank }
    }

    public var kind: Kind
    public var priority: Priority
    /// `schema.table`.
    public var table: String
    /// `schema.index`, for findings about an existing index.
    public var index: String?
    public var reason: String
    /// The statement that acts on it (CREATE/DROP INDEX CONCURRENTLY, REINDEX …), if any.
    public var sql: String?
    /// True when it comes from a rule of thumb, not from measured plan costs.
    public var heuristic: Bool
    /// For missing indexes from the workload: cost before and after, the statements it helps.
    public var costBefore: Double?
    public var costAfter: Double?
    public var estimatedBytes: Int64?
    public var writesPerSecond: Double?
    public var statements: [String]?
    /// Columns of a proposed index (create-index --columns).
    public var columns: [String]?

    public init(kind: Kind, priority: Priority, table: String, index: String? = nil, reason: String, sql: String? = nil, heuristic: Bool = false) {
        self.kind = kind
        self.priority = priority
        self.table = table
        self.index = index
        self.reason = reason
        self.sql = sql
        self.heuristic = heuristic
    }
}
