import Foundation
@testable import Anonymization
import Testing

let catalog = TableCatalog(
    tables: [
        .init(schema: "public", name: "customers", columns: [
            .init(name: "id", type: "bigint", notNull: true), .init(name: "email", type: "text", notNull: true),
            .init(name: "name", type: "text", notNull: false), .init(name: "phone", type: "text", notNull: false),
            .init(name: "born", type: "date", notNull: false),
        ], uniqueKeys: [["id"], ["email"]]),
        .init(schema: "public", name: "orders", columns: [
            .init(name: "id", type: "bigint", notNull: true), .init(name: "customer_id", type: "bigint", notNull: true),
            .init(name: "total", type: "numeric(10,2)", notNull: true),
        ], uniqueKeys: [["id"]]),
        .init(schema: "public", name: "tickets", columns: [
            .init(name: "id", type: "integer", notNull: true), .init(name: "customer_email", type: "text", notNull: false),
            .init(name: "body", type: "text", notNull: false),
        ], uniqueKeys: [["id"]]),
    ],
    foreignKeys: [.init(name: "orders_customer_id_fkey", table: "public.orders", columns: ["customer_id"],
                        referenced: "public.customers", referencedColumns: ["id"])])

let fullPolicy = """
    strict: true
    tables:
      public.customers:
        id: {rule: hash}
        email: {rule: email, length: 52, case: keep}
        name: {rule: fake, kind: full_name}
        phone: {rule: hash, pattern: digits}
        born: {rule: generalize, to: year}
      public.orders:
        id: keep
        total: keep
      public.tickets:
        id: keep
        body: redact
    references:
      - {from: public.tickets.customer_email, to: public.customers.email}
    """

func problems(_ yaml: String) -> String {
    do {
        _ = try AnonymizationPolicy.parse(yaml).plan(for: catalog)
        return ""
    } catch {
        return error.message
    }
}

@Suite("Anonymization policies: validated by path, fail closed, references joinable, unique kept unique")
struct PolicyTests {
    @Test("a full policy plans every column; references inherit the referenced column's rule")
    func fullPlan() throws {
        let plan = try AnonymizationPolicy.parse(fullPolicy).plan(for: catalog)
        let orders = try #require(plan.tables["public.orders"])
        let fk = try #require(orders.first { $0.name == "customer_id" })
        #expect(fk.rule.identity == "hash:52:")
        #expect(fk.source.contains("via foreign key orders_customer_id_fkey"))
        let linked = try #require(plan.tables["public.tickets"]?.first { $0.name == "customer_email" })
        #expect(linked.rule.identity == "email:52:false:keep-case")
        // Joinable: the same original gives the same output on both sides.
        let id = plan.tables["public.customers"]!.first { $0.name == "id" }!
        #expect(try id.rule.apply("42", kind: .integer, key: key) == fk.rule.apply("42", kind: .integer, key: key))
    }

    @Test("strict: a column nobody decided about stops the export, listing the columns")
    func strictCoverage() {
        let yaml = fullPolicy.replacingOccurrences(of: "    born: {rule: generalize, to: year}\n", with: "")
            .replacingOccurrences(of: "        born: {rule: generalize, to: year}\n", with: "")
        #expect(problems(yaml).contains("tables.public.customers: strict policy, and no rule for column(s) born"))
        #expect(problems("strict: true\ntables: {}").contains("no rule for column(s) id, email, name, phone, born"))
        #expect(problems(yaml.replacingOccurrences(of: "strict: true", with: "strict: false")) == "")
    }

    @Test("problems are named by their path", arguments: [
        ("email: {rule: email, length: 52, case: keep}", "email: {rule: email}", "tables.public.customers.email: column public.customers.email is unique and rule email:16:false can give two rows the same value"),
        ("name: {rule: fake, kind: full_name}", "name: {rule: noise}", "tables.public.customers.name: rule noise does not fit column public.customers.name of type text"),
        ("email: {rule: email, length: 52, case: keep}", "email: null", "column public.customers.email is NOT NULL"),
        ("name: {rule: fake, kind: full_name}", "nmae: keep", "tables.public.customers.nmae: no column 'nmae' in public.customers"),
        ("id: keep\n    total: keep", "id: keep\n    total: keep\n    customer_id: keep", "tables.public.orders.customer_id (keep) and tables.public.customers.id (hash:52:) are the two sides of foreign key orders_customer_id_fkey"),
        ("body: redact", "body: redact\n    customer_email: {rule: email}", "tables.public.tickets.customer_email (email:16:false) and tables.public.customers.email (email:52:false:keep-case) are the two sides of references"),
        ("strict: true", "strict: maybe", "strict: 'maybe' must be true or false"),
        ("public.orders:", "orders:", "tables.orders: name tables as schema.table"),
    ] as [(String, String, String)])
    func named(_ from: String, _ to: String, _ message: String) {
        let yaml = fullPolicy.replacingOccurrences(of: from, with: to)
        #expect(yaml != fullPolicy)
        #expect(problems(yaml).contains(message), "\(problems(yaml))")
    }

    @Test("the policy digest changes with the policy, and no key is ever in it")
    func digest() throws {
        let a = try AnonymizationPolicy.parse(fullPolicy), b = try AnonymizationPolicy.parse(fullPolicy + "\n# note")
        #expect(a.digest != b.digest && a.digest.count == 64)
    }

    /// 20,000 per rule here (the debug build runs the rounds slowly); the digit rule is a
    /// bijection by construction (see the Feistel tests), the others by SHA-256.
    @Test("distinct originals stay distinct under the rules allowed on unique columns")
    func distinct() throws {
        for r in [rule("hash"), rule("email", ["length": "52"]), rule("hash", ["pattern": "digits"])] {
            var seen = Set<String>()
            seen.reserveCapacity(20_000)
            for i in 0..<20_000 {
                let original = r is Hash && r.identity == "hash:digits" ? String(format: "+1 555 %07d", i) : "user\(i)@example.org"
                seen.insert(try r.apply(original, kind: .text, key: key)!)
            }
            #expect(seen.count == 20_000, "\(r.identity)")
        }
    }
}
