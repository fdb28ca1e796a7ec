/// What the database says about the tables of an export, as far as masking cares: read
/// from the catalog in the export's snapshot, then checked against the policy (pure).
public struct TableCatalog: Sendable, Equatable {
    public struct Column: Sendable, Equatable {
        public var name: String
        public var type: String
        public var notNull: Bool
        /// The type a domain stands on (domains over domains followed to the end), or nil
        /// when `type` is not a domain: what the masking rules read the values as.
        public var baseType: String?
        public var kind: ValueKind { ValueKind(postgresType: baseType ?? type) }
        /// For an array (or a domain over one): its element type, a domain read as its
        /// base. What the `elements` rule masks each element as.
        public var elementType: String?
        public var elementKind: ValueKind? { elementType.map { ValueKind(postgresType: $0) } }
        public init(name: String, type: String, notNull: Bool, baseType: String? = nil, elementType: String? = nil) {
            self.name = name
            self.type = type
            self.notNull = notNull
            self.baseType = baseType
            self.elementType = elementType
        }
    }

    public struct Table: Sendable, Equatable {
        public var schema: String
        public var name: String
        public var columns: [Column]
        /// Column sets with a unique index or constraint (primary key included).
        public var uniqueKeys: [[String]]
        public var qualifiedName: String { "\(schema).\(name)" }
        public init(schema: String, name: String, columns: [Column], uniqueKeys: [[String]] = []) {
            self.schema = schema
            self.name = name
            self.columns = columns
            self.uniqueKeys = uniqueKeys
        }
        public func column(_ name: String) -> Column? { columns.first { $0.name == name } }
    }

    /// A foreign key: `columns` of `table` reference `referencedColumns` of `referenced`.
    public struct ForeignKey: Sendable, Equatable {
        public var name: String
        public var table: String
        public var columns: [String]
        public var referenced: String
        public var referencedColumns: [String]
        public init(name: String, table: String, columns: [String], referenced: String, referencedColumns: [String]) {
            self.name = name
            self.table = table
            self.columns = columns
            self.referenced = referenced
            self.referencedColumns = referencedColumns
        }
    }

    public var tables: [Table]
    public var foreignKeys: [ForeignKey]

    public init(tables: [Table], foreignKeys: [ForeignKey] = []) {
        self.tables = tables
        self.foreignKeys = foreignKeys
    }

    public func table(_ qualifiedName: String) -> Table? { tables.first { $0.qualifiedName == qualifiedName } }

    /// Tables in an order where every referenced table comes before the tables that
    /// reference it (cycles and self-references broken by name order).
    public var dependencyOrder: [Table] {
        var placed: [String] = []
        var remaining = tables.map(\.qualifiedName).sorted()
        while !remaining.isEmpty {
            let ready = remaining.filter { name in
                foreignKeys.filter { $0.table == name && $0.referenced != name }
                    .allSatisfy { placed.contains($0.referenced) || !remaining.contains($0.referenced) }
            }
            let next = ready.first ?? remaining[0]
            placed.append(next)
            remaining.removeAll { $0 == next }
        }
        return placed.compactMap(table)
    }
}
