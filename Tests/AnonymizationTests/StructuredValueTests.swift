@testable import Anonymization
import Testing

/// JSON documents masked by path and arrays masked by element (#32 item 12): their text
/// forms read and written back exactly, and no value a rule names, or `other` covers,
/// left in the output.
@Suite("JSON by path and arrays by element")
struct StructuredValueTests {
    static let key = try! AnonymizationKey("structured-key-0123456789abcdef")

    @Test("array text: quotes, backslashes, NULL and \"NULL\", nested dimensions, bounds and spaces read as PostgreSQL prints and reads them",
          arguments: [
            (#"{a,b}"#, [PostgresArrayText.Node.element("a"), .element("b")], ""),
            (#"{"a b","c,d","e\"f","g\\h",NULL,"NULL",null}"#, [.element("a b"), .element("c,d"), .element("e\"f"), .element("g\\h"), .element(nil), .element("NULL"), .element(nil)], ""),
            (#"{{1,2},{3,4}}"#, [.array([.element("1"), .element("2")]), .array([.element("3"), .element("4")])], ""),
            (#"[0:1]={x,y}"#, [.element("x"), .element("y")], "[0:1]="),
            (#"{}"#, [], ""),
            (#"{ a b , c }"#, [.element("a b"), .element("c")], ""),
            (#"{a\,b,\ c}"#, [.element("a,b"), .element(" c")], ""),
            (#"{"",""}"#, [.element(""), .element("")], ""),
          ])
    func arrayText(_ text: String, _ nodes: [PostgresArrayText.Node], _ dimensions: String) throws {
        let parsed = try #require(PostgresArrayText(text), "\(text) did not parse")
        #expect(parsed.root == nodes)
        #expect(parsed.dimensions == dimensions)
        // Written back (every element quoted), it reads as the same array.
        #expect(PostgresArrayText(parsed.text) == parsed, "\(parsed.text)")
    }

    @Test("text that is not an array is refused, not passed on", arguments: ["", "a,b", "{a,b", "{\"a}", "{a}x", "{a,,b}", "[1:2]{a}", "{a\"b}"])
    func notArrays(_ text: String) {
        #expect(PostgresArrayText(text) == nil, "\(text)")
    }

    @Test("JSON text: member order, duplicate keys and numbers' digits survive a round trip; escapes and surrogate pairs decode")
    func jsonText() throws {
        let text = #"{"b": 1.50, "a": [true, false, null], "b": 123456789012345678901234567890, "s": "tab\tq\"\\ \u00e9 \ud83d\ude00 \/", "e": -1.5E+3, "o": {}}"#
        let doc = try #require(JSONText(parsing: text))
        guard case .object(let members) = doc else { Issue.record("not an object"); return }
        #expect(members.map { $0.key } == ["b", "a", "b", "s", "e", "o"])
        #expect(members[0].value == .number("1.50") && members[2].value == .number("123456789012345678901234567890"))
        #expect(members[3].value == .string("tab\tq\"\\ é 😀 /"))
        #expect(JSONText(parsing: doc.text) == doc, "\(doc.text)")
        #expect(doc.text == #"{"b":1.50,"a":[true,false,null],"b":123456789012345678901234567890,"s":"tab\tq\"\\ é 😀 /","e":-1.5E+3,"o":{}}"#)
        for bad in ["", "{", "{\"a\"}", "[1,]", "01", "1.", "\"\\x\"", "{\"a\":1}x", "tru", "\"\u{1}\""] {
            let parsed: JSONText? = JSONText(parsing: bad)
            #expect(parsed == nil, "\(bad)")
        }
    }

    @Test("paths: names, quoted names, [*], [N], .* — and what is not a path is named with its entry",
          arguments: [("$.a.b", [JSONPaths.Step.member("a"), .member("b")]), ("$.phones[*]", [.member("phones"), .anyElement]),
                      (#"$["odd key"][0].*"#, [.member("odd key"), .element(0), .anyMember]), ("$", [])])
    func paths(_ text: String, _ steps: [JSONPaths.Step]) throws {
        #expect(try JSONPaths.parsePath(text, entry: "p") == steps)
    }

    @Test("a bad path or json entry is refused naming its entry", arguments: ["a.b", "$.", "$[", "$[x]", "$.a[*", #"$["a]"#])
    func badPaths(_ text: String) {
        #expect(throws: AnonymizationError.self) { try JSONPaths.parsePath(text, entry: "tables.public.t.c.paths") }
    }

    static func json(_ yaml: String) throws -> any MaskingRule {
        let policy = try AnonymizationPolicy.parse("strict: false\ntables:\n  public.t:\n    c: " + yaml)
        return try #require(policy.tables["public.t"]?["c"]?.rule)
    }

    static let profileRule = """
        {rule: json, other: null, paths: {$.email: {rule: email, length: 52, case: keep}, "$.phones[*]": {rule: hash, pattern: digits}, $.address.zip: {rule: hash, length: 8}, $.born: {rule: noise, days: 30, type: date}, $.age: {rule: noise, percent: 10}, $.history: null}}
        """

    @Test("json masks each named path by its rule, every other value by other: null (names kept), and no original survives")
    func jsonByPath() throws {
        let rule = try Self.json(Self.profileRule)
        let original = #"{"email": "Zebediah.Quonsett@mail.example", "phones": ["+49 30 1234567", "+1 555 0101"], "address": {"zip": "10115", "city": "Berlinbury", "street": "Hauptstr 7"}, "born": "1987-04-23", "age": 38, "vip": true, "history": [{"note": "called Zebediah"}], "tags": ["Quonsett family"], "none": null}"#
        let masked = try #require(try rule.apply(original, kind: .json, key: Self.key))
        let doc = try #require(JSONText(parsing: masked), "\(masked)")
        for secret in ["Zebediah", "Quonsett", "1234567", "0101", "10115", "Berlinbury", "Hauptstr", "1987-04-23", "called"] {
            #expect(!masked.contains(secret), "\(secret) in \(masked)")
        }
        guard case .object(let members) = doc else { Issue.record("not an object"); return }
        var byKey: [String: JSONText] = [:]
        for member in members where byKey[member.key] == nil { byKey[member.key] = member.value }
        #expect(members.map { $0.key } == ["email", "phones", "address", "born", "age", "vip", "history", "tags", "none"], "order and names kept")
        guard case .string(let email)? = byKey["email"] else { Issue.record("email: \(String(describing: byKey["email"]))"); return }
        #expect(email.contains("@"))
        guard case .array(let phones)? = byKey["phones"], phones.count == 2, case .string(let phone) = phones[0] else { Issue.record("phones"); return }
        #expect(phone.map { $0.isNumber ? "9" : $0 } == "+49 30 1234567".map { $0.isNumber ? "9" : $0 }, "digits permuted in place: \(phone)")
        guard case .object(let address)? = byKey["address"] else { Issue.record("address"); return }
        #expect(address.map { $0.key } == ["zip", "city", "street"])
        #expect(address[1].value == .null && address[2].value == .null, "other: null")
        guard case .string(let zip) = address[0].value else { Issue.record("zip"); return }
        #expect(zip.count == 8)
        guard case .string(let born)? = byKey["born"] else { Issue.record("born"); return }
        #expect(born.count == 10 && born.hasPrefix("19"), "a date, moved: \(born)")
        guard case .number(let age)? = byKey["age"] else { Issue.record("age stays a number: \(String(describing: byKey["age"]))"); return }
        #expect(Int(age) != nil)
        #expect(byKey["vip"] == .null && byKey["history"] == .null && byKey["tags"] == .array([.null]) && byKey["none"] == .null)
        // Deterministic: the same document masks the same way (joins and re-runs agree).
        #expect(try rule.apply(original, kind: .json, key: Self.key) == masked)
    }

    @Test("other: drop removes what no path names, other: keep keeps it; keep at a path keeps that subtree")
    func otherModes() throws {
        let doc = #"{"id": 7, "name": "Zebediah", "meta": {"source": "web", "ip": "10.1.2.3"}, "list": [1, "x"]}"#
        let drop = try Self.json(#"{rule: json, other: drop, paths: {$.name: {rule: fake, kind: first_name}, $.meta.source: keep}}"#)
        let dropped = try #require(try drop.apply(doc, kind: .json, key: Self.key))
        let parsed = try #require(JSONText(parsing: dropped))
        guard case .object(let m) = parsed else { Issue.record("not an object"); return }
        #expect(m.map { $0.key } == ["name", "meta", "list"], "\(dropped)")
        #expect(m[1].value == .object([(key: "source", value: .string("web"))]), "\(dropped)")
        #expect(m[2].value == .array([]), "\(dropped)")
        #expect(!dropped.contains("Zebediah") && !dropped.contains("10.1.2.3"))
        let keep = try Self.json(#"{rule: json, other: keep, paths: {$.name: null}}"#)
        #expect(try keep.apply(doc, kind: .json, key: Self.key) == #"{"id":7,"name":null,"meta":{"source":"web","ip":"10.1.2.3"},"list":[1,"x"]}"#)
        // The manifest must list such a column as partly raw: the rule says it keeps values.
        #expect((keep as? JSONPaths)?.keepsSomeValues == true && (drop as? JSONPaths)?.keepsSomeValues == true)
        #expect((try Self.json(#"{rule: json, other: null, paths: {$.a: hash}}"#) as? JSONPaths)?.keepsSomeValues == false)
    }

    @Test("a rule that cannot mask what a path holds stops the masking, naming the path and never the value")
    func refusals() throws {
        let rule = try Self.json(#"{rule: json, other: null, paths: {$.address: hash, $.age: {rule: email}, "$.list[*]": {rule: noise, type: date}}}"#)
        for (doc, path) in [(#"{"address": {"zip": "10115"}}"#, "$.address"), (#"{"age": 38}"#, "$.age"),
                            (#"{"list": ["Zebediah-was-here"]}"#, "$.list[0]"), (#"not json Zebediah"#, "as JSON")] {
            do {
                _ = try rule.apply(doc, kind: .json, key: Self.key)
                Issue.record("\(doc) was masked")
            } catch {
                #expect(error.message.contains(path), "\(error.message)")
                #expect(!error.message.contains("10115") && !error.message.contains("Zebediah") && !error.message.contains("38"), "\(error.message)")
            }
        }
    }

    @Test("elements masks every element of every dimension with the element rule; NULLs and bounds stay")
    func elements() throws {
        let policy = try AnonymizationPolicy.parse("""
            strict: true
            tables:
              public.t:
                phones: {rule: elements, each: {rule: hash, pattern: digits}}
                ids: {rule: elements, each: hash}
                grid: {rule: elements, each: {rule: hash, length: 10}}
            """)
        let catalog = TableCatalog(tables: [.init(schema: "public", name: "t", columns: [
            .init(name: "phones", type: "text[]", notNull: false, elementType: "text"),
            .init(name: "ids", type: "integer[]", notNull: false, elementType: "integer"),
            .init(name: "grid", type: "character varying(20)[]", notNull: false, elementType: "character varying"),
        ])])
        let plan = try policy.plan(for: catalog)
        let rules = try #require(plan.tables["public.t"]).map { $0.rule.prepared(kind: $0.kind, key: Self.key) }
        let phones = try #require(try rules[0].apply(#"{"+49 30 1234567",NULL,"+1 (555) 010-9999"}"#))
        #expect(!phones.contains("1234567") && !phones.contains("010-9999") && phones.contains("NULL"), "\(phones)")
        let parsed = try #require(PostgresArrayText(phones))
        #expect(parsed.root.count == 3 && parsed.root[1] == .element(nil))
        let ids = try #require(try rules[1].apply("[0:2]={5,70000,-3}"))
        #expect(ids.hasPrefix("[0:2]={") && !ids.contains("\"5\"") && !ids.contains("70000"), "\(ids)")
        let grid = try #require(try rules[2].apply(#"{{Zebediah,"Quon sett"},{a,b}}"#))
        let g = try #require(PostgresArrayText(grid))
        #expect(g.root.count == 2 && !grid.contains("Zebediah") && !grid.contains("Quon"), "\(grid)")
        // An element the rule cannot read: refused, naming the element, not its value.
        #expect(throws: AnonymizationError.self) { _ = try rules[1].apply("{1,Zebediah}") }
        do { _ = try rules[1].apply("{1,Zebediah}") } catch { #expect(error.message.contains("element 2") && !error.message.contains("Zebediah"), "\(error.message)") }
    }

    @Test("the policy refuses elements on a non-array and an element rule that does not fit the element type; strict json must say other")
    func planRefusals() throws {
        let catalog = TableCatalog(tables: [.init(schema: "public", name: "t", columns: [
            .init(name: "name", type: "text", notNull: false),
            .init(name: "born", type: "date[]", notNull: false, elementType: "date"),
            .init(name: "doc", type: "jsonb", notNull: false),
            .init(name: "boxes", type: "box[]", notNull: false, elementType: "box"),
        ])])
        let policy = try AnonymizationPolicy.parse("""
            strict: true
            tables:
              public.t:
                name: {rule: elements, each: hash}
                born: {rule: elements, each: {rule: email}}
                doc: {rule: json, paths: {$.a: hash}}
                boxes: {rule: elements, each: null}
            """)
        do {
            _ = try policy.plan(for: catalog)
            Issue.record("planned")
        } catch {
            let m = error.message
            #expect(m.contains("tables.public.t.name: elements fits array columns"), "\(m)")
            #expect(m.contains("tables.public.t.born.each: rule email does not fit the elements of public.t.born (date)"), "\(m)")
            #expect(m.contains("tables.public.t.doc.other: a strict policy must say"), "\(m)")
            #expect(m.contains("tables.public.t.boxes: elements fits array columns"), "box's elements are not read by element: \(m)")
        }
        for bad in ["{rule: json}", "{rule: json, paths: {a: hash}, other: null}", "{rule: json, other: maybe}", "{rule: elements}",
                    "{rule: elements, each: shuffle}", "json", "elements", "{rule: json, other: null, paths: {$.a: {rule: elements, each: hash}}}"] {
            #expect(throws: AnonymizationError.self, "\(bad)") { _ = try Self.json(bad) }
        }
    }
}
