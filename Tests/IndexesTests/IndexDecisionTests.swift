@testable import Indexes
import PostgresClient
import PostgresParser
import Testing

@Suite("Index advice decisions (pure)")
struct IndexDecisionTests {
    typealias I = IndexCatalog.Index
    typealias T = IndexCatalog.Table

    static let week: Double = 8 * 86_400

    static func catalog(_ indexes: [I], tables: [T] = [], fks: [IndexCatalog.ForeignKey] = [], age: Double? = week) -> IndexCatalog {
        IndexCatalog(indexes: indexes, tables: tables, foreignKeys: fks, statsAgeSeconds: age)
    }

    static let orders = T(schema: "public", name: "orders", columns: ["id", "customer_id", "created_at", "status"], liveRows: 50_000,
                          seqScans: 900, indexScans: 100, writes: 10_000, bytes: 10 << 20)

    @Test("unused: reported with the statistics' age; too early to tell on fresh statistics; never a constraint's or a unique index")
    func unused() {
        let indexes = [
            I(schema: "public", table: "orders", name: "orders_pkey", keys: ["id"], unique: true, constraint: "orders_pkey", scans: 0),
            I(schema: "public", table: "orders", name: "orders_status", keys: ["status"], scans: 3, bytes: 1 << 20),
            I(schema: "public", table: "orders", name: "orders_code_key", keys: ["code"], unique: true, scans: 0),
            I(schema: "public", table: "orders", name: "orders_created", keys: ["created_at"], scans: 5000),
        ]
        let old = IndexChecks.findings(Self.catalog(indexes, tables: [Self.orders]))
        #expect(old.filter { $0.kind == .unused }.map(\.index) == ["public.orders_status"])
        #expect(old.first { $0.kind == .unused }?.priority == .medium)
        #expect(old.first { $0.kind == .unused }?.sql == "DROP INDEX CONCURRENTLY public.orders_status")
        let fresh = IndexChecks.findings(Self.catalog(indexes, tables: [Self.orders], age: 3600))
        let early = fresh.first { $0.kind == .unused }
        #expect(early?.priority == .low && early?.sql == nil)
        #expect(early?.reason.hasPrefix("too early to tell") == true)
    }

    @Test("duplicates and prefixes: the redundant one named with the index that covers it; constraint indexes kept")
    func duplicates() {
        let indexes = [
            I(schema: "public", table: "orders", name: "orders_pkey", keys: ["id"], unique: true, constraint: "orders_pkey", scans: 900),
            I(schema: "public", table: "orders", name: "orders_id_copy", keys: ["id"], scans: 900),
            I(schema: "public", table: "orders", name: "orders_customer", keys: ["customer_id"], scans: 900),
            I(schema: "public", table: "orders", name: "orders_customer_created", keys: ["customer_id", "created_at"], scans: 900),
            I(schema: "public", table: "orders", name: "orders_customer_gin", method: "gin", keys: ["customer_id"], scans: 900),
            I(schema: "shop", table: "orders", name: "orders_customer", keys: ["customer_id"], scans: 900),
        ]
        let found = IndexChecks.findings(Self.catalog(indexes, tables: [Self.orders]))
        #expect(found.first { $0.kind == .duplicate }?.index == "public.orders_id_copy")
        #expect(found.first { $0.kind == .duplicate }?.reason.contains("which backs constraint orders_pkey") == true)
        #expect(found.filter { $0.kind == .redundant }.map(\.index) == ["public.orders_customer"])
        #expect(!found.contains { $0.index == "public.orders_pkey" }, "a primary key's index is never proposed")
        #expect(!found.contains { $0.index == "shop.orders_customer" }, "another schema's table is another table (pghero#109)")
    }

    @Test("keys as the whole statement prints them: operator class, collation and ordering kept; INCLUDE apart; commas and quotes inside keys do not split")
    func keysFromDefinitions() {
        let split = IndexKey.split(definition: #"CREATE UNIQUE INDEX "a (b" ON ONLY public."T, x" USING btree (email text_pattern_ops, "order" COLLATE "C" DESC NULLS LAST, (lower((email || ', '::text))), (("x)" + 1))) INCLUDE (id, "select") WHERE (email <> '(,)'::text)"#)
        #expect(split?.keys == ["email text_pattern_ops", #""order" COLLATE "C" DESC NULLS LAST"#, "(lower((email || ', '::text)))", #"(("x)" + 1))"#])
        #expect(split?.include == ["id", #""select""#])
        #expect(IndexKey.split(definition: "CREATE INDEX i ON public.t USING btree (a)")?.keys == ["a"])
        #expect(IndexKey.split(definition: "CREATE INDEX i ON public.t USING btree (a")  == nil)
        #expect(IndexKey.column("email") == "email" && IndexKey.column("email DESC NULLS LAST") == "email")
        #expect(IndexKey.column(#""order""#) == "order" && IndexKey.column(#""Mixed ""x"" Case" DESC"#) == #"Mixed "x" Case"#)
        #expect(IndexKey.column("email text_pattern_ops") == nil && IndexKey.column(#"email COLLATE "C""#) == nil)
        #expect(IndexKey.column("(lower(email))") == nil && IndexKey.column(#""a" "b""#) == nil)
        // Keywords quoted as the server quotes them: reserved, column-name and type/function
        // keywords, not unreserved ones.
        for word in ["order", "select", "user", "group", "limit", "between", "int", "json_table"] {
            #expect(PostgresIdentifier.minimallyQuoted(word) == "\"\(word)\"")
        }
        for word in ["name", "email", "status", "created_at", "data", "key", "_x1"] { #expect(PostgresIdentifier.minimallyQuoted(word) == word) }
        #expect(PostgresIdentifier.minimallyQuoted("Email") == #""Email""# && PostgresIdentifier.minimallyQuoted("1a") == #""1a""#)
        #expect(PostgresIdentifier.minimallyQuoted("é") == #""é""#, "the server quotes every non-ASCII name")
        // Duplicates: the same column with another operator class or collation is another index.
        let indexes = [
            I(schema: "public", table: "orders", name: "plain", keys: ["status"], scans: 9),
            I(schema: "public", table: "orders", name: "pattern", keys: ["status text_pattern_ops"], scans: 9),
            I(schema: "public", table: "orders", name: "pattern_copy", keys: ["status text_pattern_ops"], scans: 9),
            I(schema: "public", table: "orders", name: "c_collation", keys: [#"status COLLATE "C""#, "id"], scans: 9),
        ]
        let found = IndexChecks.findings(Self.catalog(indexes, tables: [Self.orders]))
        #expect(found.filter { $0.kind == .duplicate || $0.kind == .redundant }.map(\.index) == ["public.pattern_copy"], "\(found)")
    }

    @Test("representative values: parameters mapped to the columns they are compared with; levels from the histogram (direct) or typical intervals (inside an expression); none without a range or with a parameter of no known role")
    func representativeValues() throws {
        #expect(RepresentativeValues.preparable("SELECT id FROM ev WHERE created_at > now() - interval $1 AND d < DATE $2 AND t = timestamp with time zone $3")
                == "SELECT id FROM ev WHERE created_at > now() - $1::interval AND d < $2::DATE AND t = $3::timestamp with time zone")
        #expect(RepresentativeValues.preparable("SELECT $1 AND $2") == "SELECT $1 AND $2")
        #expect(RepresentativeValues.elements(#"{1,2,"a b","q\"x",NULL}"#) == ["1", "2", "a b", #"q"x"#])
        #expect(RepresentativeValues.elements("{}").isEmpty)
        let catalog = Self.catalog([], tables: [T(schema: "public", name: "ev", columns: ["id", "created_at", "kind", "amount"], liveRows: 300_000)])
        func roles(_ sql: String) throws -> [Int: WorkloadCandidates.ParameterRole] {
            WorkloadCandidates.analyze(try #require(try SQLParser.parse(sql).first), catalog: catalog).parameters
        }
        let expression = try roles("SELECT id FROM ev WHERE created_at > now() - $1::interval AND kind = $2")
        #expect(expression[1] == .init(table: "public.ev", column: "created_at", op: ">", direct: false))
        #expect(expression[2] == .init(table: "public.ev", column: "kind", op: "=", direct: true))
        let flipped = try roles("SELECT id FROM ev WHERE $1 < amount AND amount BETWEEN $2 AND $3")
        #expect(flipped[1]?.op == ">" && flipped[2]?.op == ">=" && flipped[3]?.op == "<=")
        let histogram = (0...100).map { String(format: "%03d", $0) }
        let stats = ["public.ev.amount": RepresentativeValues.ColumnStats(histogram: histogram), "public.ev.kind": .init(mostCommon: ["7", "8"])]
        #expect(RepresentativeValues.assignments(count: 2, roles: expression, types: ["interval", "integer"], stats: stats)
                == [["'1 minute'", "'7'"], ["'1 hour'", "'7'"], ["'1 day'", "'7'"]])
        #expect(RepresentativeValues.assignments(count: 1, roles: [1: .init(table: "public.ev", column: "amount", op: ">", direct: true)], types: ["numeric"], stats: stats)
                == [["'100'"], ["'099'"], ["'090'"]], "above the value: the top 0.1 %, 1 %, 10 % of the histogram")
        #expect(RepresentativeValues.assignments(count: 1, roles: [1: .init(table: "public.ev", column: "amount", op: "<=", direct: true)], types: ["numeric"], stats: stats)
                == [["'000'"], ["'001'"], ["'010'"]])
        #expect(RepresentativeValues.assignments(count: 1, roles: [1: expression[2]!], types: ["integer"], stats: stats).isEmpty, "equality alone: the generic plan says enough")
        #expect(RepresentativeValues.assignments(count: 2, roles: [1: expression[1]!], types: ["interval", "integer"], stats: stats).isEmpty, "$2 has no role")
        #expect(RepresentativeValues.assignments(count: 1, roles: [1: .init(table: "public.ev", column: "amount", op: ">", direct: false)], types: ["numeric"], stats: stats).isEmpty,
                "a number inside an expression: no typical value")
    }

    @Test("invalid indexes, foreign keys without an index, tables read by sequential scans")
    func others() {
        let indexes = [
            I(schema: "public", table: "orders", name: "orders_broken", keys: ["status"], valid: false, definition: "CREATE INDEX orders_broken ON public.orders USING btree (status)"),
            I(schema: "public", table: "items", name: "items_order_product", keys: ["order_id", "product_id"], scans: 900),
        ]
        let fks = [
            IndexCatalog.ForeignKey(schema: "public", table: "orders", name: "orders_customer_fk", columns: ["customer_id"], referenced: "public.customers"),
            IndexCatalog.ForeignKey(schema: "public", table: "items", name: "items_order_fk", columns: ["order_id"], referenced: "public.orders"),
        ]
        let found = IndexChecks.findings(Self.catalog(indexes, tables: [Self.orders], fks: fks))
        #expect(found.first { $0.kind == .invalid }?.sql == "DROP INDEX CONCURRENTLY public.orders_broken")
        #expect(found.first { $0.kind == .invalid }?.priority == .high)
        #expect(found.filter { $0.kind == .unindexedForeignKey }.map(\.table) == ["public.orders"])
        #expect(found.first { $0.kind == .unindexedForeignKey }?.sql == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id)")
        let seq = found.first { $0.kind == .sequentialScans }
        #expect(seq?.table == "public.orders" && seq?.heuristic == true && seq?.reason.hasPrefix("10% of 1000 scans") == true)
        #expect(found.map(\.priority) == found.map(\.priority).sorted(), "ordered by priority")
    }

    static let shop = catalog([
        I(schema: "public", table: "orders", name: "orders_pkey", keys: ["id"], unique: true, constraint: "orders_pkey"),
        I(schema: "public", table: "customers", name: "customers_pkey", keys: ["id"], unique: true, constraint: "customers_pkey"),
    ], tables: [
        orders,
        T(schema: "public", name: "customers", columns: ["id", "email", "country"], liveRows: 20_000),
    ])

    @Test("workload candidates: equality, ranges, joins and sorts, resolved through aliases; OR and indexed columns skipped")
    func candidates() {
        func c(_ sql: String) -> [String] { WorkloadCandidates.candidates(sql, catalog: Self.shop).map { "\($0.table)(\($0.columns.joined(separator: ",")))" } }
        #expect(c("SELECT * FROM orders WHERE customer_id = $1") == ["public.orders(customer_id)"])
        #expect(c("SELECT * FROM orders WHERE status = $1 AND created_at > $2 ORDER BY created_at") ==
                ["public.orders(status)", "public.orders(created_at)", "public.orders(status,created_at)"])
        #expect(c("SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = $1") ==
                ["public.customers(email)", "public.orders(customer_id)"])
        #expect(c("SELECT * FROM orders WHERE id = $1") == [], "the primary key already leads an index")
        #expect(c("SELECT * FROM orders WHERE status = $1 OR customer_id = $2") == [], "OR: neither alone narrows")
        #expect(c("UPDATE orders SET status = $1 WHERE customer_id IN ($2, $3)") == ["public.orders(customer_id)"])
        #expect(c("DELETE FROM customers WHERE country = $1") == ["public.customers(country)"])
        #expect(c("INSERT INTO orders VALUES ($1)") == [])
        #expect(c("SELECT * FROM nosuchtable WHERE x = 1") == [])
    }

    @Test("builds: names, quoting, methods and the parser's check; --sql must be CONCURRENTLY and named")
    func buildSpecs() throws {
        let spec = try IndexBuildPlan.spec(table: "orders", columns: ["customer_id", "created_at"], method: nil, include: ["status"], predicate: "status <> 'done'",
                                           unique: false, name: nil)
        #expect(IndexBuildPlan.createSQL(spec) == "CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx ON public.orders USING btree (customer_id, created_at) INCLUDE (status) WHERE status <> 'done'")
        let expr = try IndexBuildPlan.spec(table: "shop.Users", columns: ["lower(email)"], method: "btree", include: [], predicate: nil, unique: true, name: "users_email")
        #expect(IndexBuildPlan.createSQL(expr) == "CREATE UNIQUE INDEX CONCURRENTLY users_email ON shop.\"Users\" USING btree ((lower(email)))")
        #expect(IndexBuildPlan.createSQL(expr, concurrently: false, only: true) == "CREATE UNIQUE INDEX users_email ON ONLY shop.\"Users\" USING btree ((lower(email)))")
        #expect(throws: IndexBuildPlan.Problem.self) { _ = try IndexBuildPlan.spec(table: "t", columns: ["a"], method: "bloom", include: [], predicate: nil, unique: false, name: nil) }
        #expect(throws: IndexBuildPlan.Problem.self) { _ = try IndexBuildPlan.spec(table: "t", columns: ["a"], method: nil, include: [], predicate: "true; DROP TABLE t", unique: false, name: nil) }
        #expect(throws: IndexBuildPlan.Problem.self) { _ = try IndexBuildPlan.spec(table: "t", columns: [], method: nil, include: [], predicate: nil, unique: false, name: nil) }
        let sql = try IndexBuildPlan.spec(sql: "CREATE INDEX CONCURRENTLY o_c ON shop.orders (customer_id)")
        #expect(sql.schema == "shop" && sql.table == "orders" && sql.name == "o_c" && sql.keys == ["customer_id"])
        #expect(throws: IndexBuildPlan.Problem.self) { _ = try IndexBuildPlan.spec(sql: "CREATE INDEX o_c ON orders (customer_id)") }
        #expect(throws: IndexBuildPlan.Problem.self) { _ = try IndexBuildPlan.spec(sql: "CREATE INDEX CONCURRENTLY ON orders (customer_id)") }
        #expect(throws: IndexBuildPlan.Problem.self) { _ = try IndexBuildPlan.spec(sql: "DROP TABLE orders") }
        #expect(IndexBuildPlan.defaultName(table: String(repeating: "t", count: 60), columns: ["abc"]).utf8.count == 63)
        #expect(IndexBuildPlan.partitionIndexName("events_at_idx", partition: "events_2026_01") == "events_at_idx_events_2026_01")
    }
}
