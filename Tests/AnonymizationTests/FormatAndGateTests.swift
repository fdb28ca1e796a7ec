import Crypto
import Foundation
@testable import Anonymization
import Testing

@Suite("Row formats, the k-anonymity gate, server-side rules and the personal-data scan (pure)")
struct FormatAndGateTests {
    static let names = ["id", "name", "total", "ok", "note"]
    static let kinds: [ValueKind] = [.integer, .text, .decimal, .boolean, .text]
    static let nasty: [[String?]] = [
        ["1", "Anna", "12.50", "t", "plain"],
        ["2", "", "-0.5", "f", nil],
        ["3", "a,b \"quoted\"", "1e5", nil, "line\nbreak\ttab\\back\r"],
        ["4", " padded ", "NaN", "t", "\\."],
        ["5", "ünïcødé 🎉", "007", "f", "\u{01}control"],
    ]

    @Test("JSON lines: numbers and booleans typed, everything else a string, and decoding gives the fields back exactly")
    func jsonLines() throws {
        var out: [UInt8] = []
        for row in Self.nasty { RowFormat.jsonl.encode(row, names: Self.names, kinds: Self.kinds, into: &out) }
        let lines = out.split(separator: 0x0A)
        #expect(lines.count == Self.nasty.count)
        #expect(String(decoding: lines[0], as: UTF8.self) == #"{"id":1,"name":"Anna","total":12.50,"ok":true,"note":"plain"}"#)
        // NaN and 007 are not JSON numbers: written as strings, read back as they were.
        #expect(String(decoding: lines[3], as: UTF8.self).contains(#""total":"NaN""#))
        #expect(String(decoding: lines[4], as: UTF8.self).contains(#""total":"007""#))
        for (line, row) in zip(lines, Self.nasty) {
            #expect(try JSONLine.decode(line, names: Self.names) == row)
            // Every line is JSON a standard parser accepts.
            #expect((try? JSONSerialization.jsonObject(with: Data(line))) != nil, "\(String(decoding: line, as: UTF8.self))")
        }
        #expect(throws: AnonymizationError.self) { try JSONLine.decode(Array(#"{"id":1}"#.utf8)[...], names: Self.names) }
        #expect(throws: AnonymizationError.self) { try JSONLine.decode(Array(#"{"id":1,"name":"x"#.utf8)[...], names: ["id", "name"]) }
        #expect(try JSONLine.decode(Array(#"{"a":"\u00e9\ud83c\udf89"}"#.utf8)[...], names: ["a"]) == ["é🎉"])
    }

    @Test("CSV: NULL unquoted and empty, an empty string quoted, specials quoted with doubled quotes; a header first")
    func csv() {
        var out: [UInt8] = []
        for row in Self.nasty.prefix(4) { RowFormat.csv.encode(row, names: Self.names, kinds: Self.kinds, into: &out) }
        let text = String(decoding: out, as: UTF8.self)
        let expected = [
            #"1,Anna,12.50,t,plain"#,
            #"2,"",-0.5,f,"#,
            #"3,"a,b ""quoted""",1e5,,"line"#,
            "break\ttab\\back\r\"",
            #"4," padded ",NaN,t,"\.""#,
            "",
        ].joined(separator: "\n")
        #expect(text == expected)
        #expect(String(decoding: RowFormat.csv.header(["id", "a,b"]), as: UTF8.self) == "id,\"a,b\"\n")
        #expect(RowFormat.copy.header(["id"]).isEmpty && RowFormat.jsonl.header(["id"]).isEmpty)
    }

    @Test("k-anonymity: the smallest group named with its size; groups and rows below k counted")
    func kAnonymity() throws {
        let requirement = KAnonymityRequirement(table: "public.customers", columns: ["born", "zip"], k: 3, mode: .refuse, path: "k_anonymity.public.customers")
        let groups = KAnonymityGroups(requirement, columns: ["id", "zip", "born"])
        for i in 0..<10 { groups.observe([String(i), "10***", "1980-01-01"]) }
        for i in 0..<2 { groups.observe([String(i), "20***", "1990-01-01"]) }
        groups.observe(["x", nil, "1990-01-01"])
        let outcome = try groups.outcome()
        #expect(!outcome.passed)
        #expect(outcome.groups == 3 && outcome.groupsBelowK == 2 && outcome.rowsBelowK == 3 && outcome.rows == 13)
        #expect(outcome.smallestGroupSize == 1)
        #expect(outcome.summary.hasSuffix("the smallest occurs 1 time(s)"), "\(outcome.summary)")
        // Never a group's values: a quasi-identifier kept as it is would show originals.
        #expect(!outcome.summary.contains("1990-01-01") && !outcome.summary.contains("20***"), "\(outcome.summary)")

        let wide = KAnonymityGroups(requirement, columns: ["born", "zip"])
        for i in 0...KAnonymityRequirement.maximumGroups { wide.observe([String(i), "z"]) }
        #expect(throws: AnonymizationError.self) { try wide.outcome() }
        #expect(wide.rows == Int64(KAnonymityRequirement.maximumGroups + 1))
    }

    @Test("k_anonymity in a policy: parsed, and every problem named by its path")
    func kAnonymityPolicy() throws {
        let good = fullPolicy + "\nk_anonymity:\n  public.customers: {quasi_identifiers: [born, name], k: 4, mode: report}\n"
        let plan = try AnonymizationPolicy.parse(good).plan(for: catalog)
        #expect(plan.kAnonymity["public.customers"]?.k == 4 && plan.kAnonymity["public.customers"]?.mode == .report)
        let message = problems(fullPolicy + """

            k_anonymity:
              public.customers: {quasi_identifiers: [born, zodiac], k: 4}
            """)
        #expect(message.contains("k_anonymity.public.customers.quasi_identifiers: no column(s) zodiac in public.customers"), "\(message)")
        for (spec, expected) in [
            ("{quasi_identifiers: [born], k: 1}", "k_anonymity.public.customers.k: expected a whole number of at least 2"),
            ("{quasi_identifiers: [born], k: 3, mode: hide}", "k_anonymity.public.customers.mode: 'hide' is not refuse or report"),
            ("{quasi_identifiers: born, k: 3}", "k_anonymity.public.customers.quasi_identifiers: expected a list of column names"),
            ("{quasi_identifiers: [born], k: 3, size: 2}", "k_anonymity.public.customers.size: unknown setting"),
        ] {
            let text = problems(fullPolicy + "\nk_anonymity:\n  public.customers: \(spec)\n")
            #expect(text.contains(expected), "\(spec): \(text)")
        }
    }

    @Test("shuffle and sql: computed by the server; refused on a reference or (sql) a unique column; sql must be one expression")
    func serverRules() throws {
        let shuffled = fullPolicy.replacingOccurrences(of: "name: {rule: fake, kind: full_name}", with: "name: shuffle")
            .replacingOccurrences(of: "born: {rule: generalize, to: year}", with: "born: {rule: sql, expression: \"date_trunc('year', born)::date\"}")
        let plan = try AnonymizationPolicy.parse(shuffled).plan(for: catalog)
        let columns = try #require(plan.tables["public.customers"])
        #expect(columns.first { $0.name == "name" }?.rule.computedByServer == true)
        #expect(columns.first { $0.name == "born" }?.rule.identity == "sql:date_trunc('year', born)::date")
        // A transformer passes server-computed columns through untouched.
        let transformer = RowTransformer(columns: columns.filter { $0.rule.computedByServer }, key: nil)
        #expect(transformer.isIdentity)

        let onKey = problems(fullPolicy.replacingOccurrences(of: "id: {rule: hash}", with: "id: shuffle"))
        #expect(onKey.contains("tables.public.customers.id: shuffle cannot keep foreign key orders_customer_id_fkey joinable"), "\(onKey)")
        let onLink = problems(fullPolicy.replacingOccurrences(of: "email: {rule: email, length: 52, case: keep}", with: "email: {rule: sql, expression: \"upper(email)\"}"))
        #expect(onLink.contains("sql cannot keep references: public.tickets.customer_email → public.customers.email joinable"), "\(onLink)")
        #expect(onLink.contains("is unique and rule sql:upper(email) can give two rows the same value"), "\(onLink)")
        for bad in ["\"1; DROP TABLE customers\"", "\"x -- comment\"", "\"\""] {
            #expect(problems(fullPolicy.replacingOccurrences(of: "phone: {rule: hash, pattern: digits}", with: "phone: {rule: sql, expression: \(bad)}"))
                .contains("tables.public.customers.phone"))
        }
        // The shuffle salt names neither the key nor the column, and differs per key and column.
        let key = try AnonymizationKey("shuffle-key-0123456789")
        let salt = Shuffle.salt(key: key, column: "public.customers.name")
        #expect(salt.count == 32 && !salt.contains("shuffle-key"))
        #expect(salt != Shuffle.salt(key: key, column: "public.customers.city"))
        #expect(salt != Shuffle.salt(key: try AnonymizationKey("another-key-0123456789"), column: "public.customers.name"))
    }

    @Test("the keyed MAC is HMAC-SHA-256 byte for byte, for short, block-sized and long keys")
    func macIsHMAC() throws {
        for length in [16, 63, 64, 65, 200] {
            let secret = String((0..<length).map { Character(Unicode.Scalar(UInt8(33 + ($0 * 7) % 90))) })
            let key = try AnonymizationKey(secret)
            for value in ["", "a", "person1@mail.example", String(repeating: "x", count: 1000), "ünï"] {
                let expected = Array(HMAC<SHA256>.authenticationCode(for: Array("hash:52:".utf8) + [0] + Array(value.utf8),
                                                                     using: SymmetricKey(data: Array(secret.utf8))))
                #expect(key.mac(domain: "hash:52:", value) == expected, "key \(length), value \(value.prefix(10))")
                #expect(key.mac(domain: "hash:52:", Array(value.utf8)) == expected)
            }
        }
    }

    @Test("SipHash-2-4 (the Feistel round function) matches the reference vectors")
    func sipHash() {
        // Key 00 01 … 0f; messages 00 01 … (n-1); vectors from the SipHash paper's reference code.
        let k0: UInt64 = 0x0706050403020100, k1: UInt64 = 0x0f0e0d0c0b0a0908
        let expected: [Int: UInt64] = [0: 0x726fdb47dd0e0e31, 1: 0x74f839c593dc67fd, 8: 0x93f5f5799a932462, 15: 0xa129ca6149be45e5]
        for (length, value) in expected {
            #expect(SipHash.hash(k0: k0, k1: k1, bytes: (0..<length).map { UInt8($0) }) == value, "length \(length)")
        }
        // The two-word form is the 16-byte message.
        let bytes = (0..<16).map { UInt8($0) }
        #expect(SipHash.hash(k0: k0, k1: k1, 0x0706050403020100, 0x0f0e0d0c0b0a0908) == SipHash.hash(k0: k0, k1: k1, bytes: bytes))
    }

    /// What NSRegularExpression finds, each match wrapped in ⟨⟩: the oracle for the byte scanner.
    static func oracle(_ pattern: String, _ text: String) -> String {
        let regex = try! NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        var out = "", last = 0
        for m in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: last, length: m.range.location - last)) + "⟨" + ns.substring(with: m.range) + "⟩"
            last = m.range.location + m.range.length
        }
        return out + ns.substring(from: last)
    }

    @Test("redact's byte scanner finds exactly what the email and phone patterns find, on 20,000 random texts")
    func scannerMatchesRegex() {
        let alphabet = Array("aZx09.@-+()_% \n\té5").map(String.init) + ["ab", "com", ".org", "12", "345", "@m"]
        var generator = SystemRandomNumberGenerator()
        var rng = UInt64.random(in: 0...UInt64.max, using: &generator)
        func next() -> Int { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return Int(rng >> 33) }
        for _ in 0..<20_000 {
            let text = (0..<(next() % 40)).map { _ in alphabet[next() % alphabet.count] }.joined()
            let emails = String(decoding: TextScanner.replaceEmails(Array(text.utf8)) { "⟨\($0)⟩" }, as: UTF8.self)
            #expect(emails == Self.oracle(#"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"#, text), "\(text.debugDescription)")
            let phones = String(decoding: TextScanner.replacePhones(Array(text.utf8)) { "⟨\($0)⟩" }, as: UTF8.self)
            #expect(phones == Self.oracle(#"\+?\(?[0-9][0-9 \t\n\r\f\u000B.\-()]{5,}[0-9]"#, text), "\(text.debugDescription)")
        }
    }

    @Test("redact values: originals found as whole words (longest first) and replaced by their masked values")
    func redactValues() throws {
        let values = RedactValues(["Anna Schmidt": "Maria Lopez", "Anna": "Eva", "Jürgen": "Tom", "ab": "zz", "NI-000000042": "NI-913370555"])
        let redact = try RuleRegistry.make("redact", parameters: ["values": "public.customers.name"], path: "p") as! Redact
        let key = try AnonymizationKey("values-key-0123456789")
        let out = try redact.with(values).apply("Hi Anna Schmidt, Anna and Annabelle; Jürgen! ab NI-000000042.", kind: .text, key: key)
        #expect(out == "Hi Maria Lopez, Eva and Annabelle; Tom! ab NI-913370555.", "\(out ?? "nil")")
        #expect(values.count == 4, "a two-letter original is ignored")
        #expect(redact.identity.hasSuffix(":values=public.customers.name"))
        #expect(try redact.with(values).apply("nothing to see", kind: .text, key: key) == "nothing to see")
        // An original with spaces, quotes or a backslash around its words is found by them
        // (it was skipped, and stayed readable in the text).
        let padded = RedactValues([" Zoe Quinn ": "Eva Lind", "\\N Bob Ray": "Tom Fry", "\"Ann\"": "Ida", "!!!": "x"])
        #expect(padded.count == 3, "an original without a word is nothing to find")
        let text = try redact.with(padded).apply("Call Zoe Quinn, then \\N Bob Ray, then \"Ann\".", kind: .text, key: key)
        #expect(text == "Call Eva Lind, then \\Tom Fry, then \"Ida\".", "\(text ?? "nil")")

        let policy = fullPolicy.replacingOccurrences(of: "body: redact", with: "body: {rule: redact, values: [public.customers.name, public.customers.phone]}")
        let plan = try AnonymizationPolicy.parse(policy).plan(for: catalog)
        let body = try #require(plan.tables["public.tickets"]?.first { $0.name == "body" }?.rule as? Redact)
        #expect(body.valueColumns == ["public.customers.name", "public.customers.phone"])
        #expect(problems(fullPolicy.replacingOccurrences(of: "body: redact", with: "body: {rule: redact, values: [public.nowhere.name]}"))
            .contains("tables.public.tickets.body.values: public.nowhere.name is not an exported column"))
        #expect(problems(fullPolicy.replacingOccurrences(of: "body: redact", with: "body: {rule: redact, values: [name]}"))
            .contains("tables.public.tickets.body.values: 'name' must be schema.table.column"))
        let shuffled = fullPolicy.replacingOccurrences(of: "name: {rule: fake, kind: full_name}", with: "name: shuffle")
            .replacingOccurrences(of: "body: redact", with: "body: {rule: redact, values: [public.customers.name]}")
        #expect(problems(shuffled).contains("public.customers.name is masked by the server"))
    }

    @Test("COPY to COPY: masking field by field gives what decoding, masking and encoding the whole row gives")
    func fieldwise() throws {
        let key = try AnonymizationKey("fieldwise-key-0123456789")
        let plan = try AnonymizationPolicy.parse(fullPolicy).plan(for: catalog)
        let columns = try #require(plan.tables["public.customers"])
        let transformer = RowTransformer(columns: columns, key: key)
        let pieces = ["", "a", "x\ty", "new\nline", "back\\slash", "\\N", "ü", "1", "1962-03-04", "person@mail.example", "+49 30 1234567"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var fields: [String?] = []
            for c in columns {
                if Bool.random(using: &generator), c.name != "id" { fields.append(nil); continue }
                switch c.kind {
                case .integer: fields.append(String(Int.random(in: -5...1_000_000, using: &generator)))
                case .date: fields.append("19\(Int.random(in: 10...99, using: &generator))-0\(Int.random(in: 1...9, using: &generator))-1\(Int.random(in: 0...9, using: &generator))")
                default: fields.append((0..<Int.random(in: 0...3, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined())
                }
            }
            var line: [UInt8] = []
            CopyText.encode(fields, into: &line)
            line.removeLast()
            var fast: [UInt8] = []
            try transformer.transform(line[...], into: &fast)
            var reference = fields
            for (i, c) in columns.enumerated() where !(c.rule is Keep) { reference[i] = try fields[i].flatMap { try c.rule.apply($0, kind: c.kind, key: key) } }
            var expected: [UInt8] = []
            CopyText.encode(reference, into: &expected)
            #expect(fast == expected, "\(fields)")
        }
        var out: [UInt8] = []
        #expect(throws: AnonymizationError.self) { try transformer.transform(Array("1\t2".utf8)[...], into: &out) }
        #expect(throws: AnonymizationError.self) { try transformer.transform(Array("1\t2\t3\t4\t5\t6".utf8)[...], into: &out) }
    }

    static func column(_ name: String, _ type: String) -> TableCatalog.Column { .init(name: name, type: type, notNull: false) }

    @Test("scan: personal columns by name and by sampled values get a fitting rule with a reason; the rest keep")
    func scan() throws {
        let cases: [(String, String, Bool, Bool, [String], String)] = [
            ("email", "text", true, false, [], "{rule: email, length: 52, case: keep}"),
            ("contact_email", "character varying(200)", false, false, [], "{rule: email, length: 52}"),
            ("mobile_phone", "text", false, false, [], "{rule: hash, pattern: digits}"),
            ("first_name", "text", false, false, [], "{rule: fake, kind: first_name}"),
            ("first_name", "text", true, false, [], "hash"),
            ("date_of_birth", "date", false, false, [], "{rule: generalize, to: year}"),
            ("birth_date", "timestamp with time zone", false, false, [], "{rule: generalize, to: year}"),
            ("national_id", "text", true, false, [], "hash"),
            ("iban", "text", false, false, [], "{rule: fake, kind: iban}"),
            ("zip", "text", false, false, [], "{rule: mask, keep_first: 2, keep_last: 0}"),
            ("notes", "text", false, false, [], "{rule: redact, email_length: 52}"),
            ("id", "bigint", true, true, [], "keep"),
            ("customer_id", "bigint", false, true, [], "keep"),
            ("total", "numeric(10,2)", false, false, ["1.00", "2.50"], "keep"),
            ("status", "text", false, false, ["open", "closed", "open"], "keep"),
            // By values: the name says nothing.
            ("contact", "text", false, false, ["a@b.example", "c.d@e.example", "x"], "{rule: email, length: 52}"),
            ("payload", "text", false, false, ["+49 30 1234567", "030-7654321"], "{rule: hash, pattern: digits}"),
            ("acct", "text", false, false, ["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819"], "{rule: fake, kind: iban}"),
            ("pan_text", "text", false, false, ["4111 1111 1111 1111", "5500-0000-0000-0004"], "{rule: hash, pattern: digits}"),
            ("who", "text", false, false, ["Anna Schmidt", "Jean-Luc Picard", "Mary Ann Evans"], "{rule: fake, kind: full_name}"),
            ("who", "text", true, false, ["Anna Schmidt", "Jean-Luc Picard"], "hash"),
            ("msg", "text", false, false, ["please write to me at anna@mail.example soon", "call +49 30 1234567 tomorrow ok"], "{rule: redact, email_length: 52}"),
            // Types no rule masks by part: never keep when the name or the values say personal.
            ("client_ip", "inet", false, false, ["10.1.2.3", "192.168.0.7"], "null"),
            ("peer", "inet", false, false, ["10.1.2.3", "2001:db8::1"], "null"),
            ("profile", "jsonb", false, false, [#"{"email": "a@b.example", "n": 1}"#, #"{"email": "c@d.example"}"#], "{rule: json, other: null}"),
            ("contacts", "text[]", false, false, [#"{anna@mail.example,"+49 30 1234567"}"#, "{bob@x.example}"], "null"),
            ("born_on", "text", false, false, ["1987-04-23", "23/04/1990"], "{rule: hash, pattern: digits}"),
            ("birthday", "text", false, false, ["23 April 1987", "1 May 1990"], "hash"),
            ("tags", "text[]", false, false, ["{a,b}", "{c}"], "keep"),
            ("settings", "jsonb", false, false, [#"{"theme": "dark"}"#], "keep"),
        ]
        for (name, type, unique, reference, samples, expected) in cases {
            let s = PersonalDataScanner.suggest(table: "public.t", column: Self.column(name, type), unique: unique, inReference: reference, samples: samples)
            #expect(s.rule == expected, "\(name) \(type) unique=\(unique) \(samples): \(s.rule) (\(s.reason))")
            #expect(s.personal == (expected != "keep"))
            #expect(!s.reason.isEmpty)
        }
        // NOT NULL: one placeholder of the type instead of NULL.
        let required = PersonalDataScanner.suggest(table: "public.t", column: .init(name: "last_ip", type: "inet", notNull: true), unique: false,
                                                   inReference: false, samples: ["10.0.0.1"])
        #expect(required.rule == #"{rule: constant, value: "0.0.0.0"}"# && required.personal, "\(required)")
        // The written policy parses and plans against the catalog it came from.
        let tables = catalog.tables.map { t in
            (t.qualifiedName, t.columns.map { c in
                (c.name, PersonalDataScanner.suggest(table: t.qualifiedName, column: c, unique: t.uniqueKeys.contains([c.name]),
                                                     inReference: c.name.hasSuffix("id"), samples: []))
            })
        }
        let text = PersonalDataScanner.policy(tables, header: "scan\ntest")
        #expect(text.hasPrefix("# scan\n# test\nstrict: true\n"))
        let plan = try AnonymizationPolicy.parse(text).plan(for: catalog)
        #expect(plan.tables["public.customers"]?.first { $0.name == "email" }?.rule.identity == "email:52:false:keep-case")
        #expect(plan.tables["public.customers"]?.first { $0.name == "phone" }?.rule.identity == "hash:digits")
    }
}
