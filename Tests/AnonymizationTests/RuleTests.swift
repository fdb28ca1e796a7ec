@testable import Anonymization
import Foundation
import Testing

let key = try! AnonymizationKey("test-key-0123456789abcdef")
let otherKey = try! AnonymizationKey("another-key-0123456789abcdef")

func rule(_ name: String, _ parameters: [String: String] = [:]) -> any MaskingRule {
    try! RuleRegistry.make(name, parameters: parameters, path: "tables.t.c")
}

@Suite("Masking rules: deterministic, keyed, typed")
struct RuleTests {
    static let cases: [(String, [String: String], ValueKind, String)] = [
        ("hash", [:], .text, "alice@example.org"),
        ("hash", ["pattern": "digits"], .text, "+49 (30) 1234-5678"),
        ("hash", [:], .integer, "123456"),
        ("hash", [:], .uuid, "6f1c2a1e-8a5b-4c7e-9d2f-0a1b2c3d4e5f"),
        ("fake", ["kind": "full_name"], .text, "Alice Smith"),
        ("fake", ["kind": "email"], .text, "alice@example.org"),
        ("fake", ["kind": "iban"], .text, "DE89370400440532013000"),
        ("email", [:], .text, "Alice@Example.org"),
        ("mask", ["keep_last": "4"], .text, "4111111111111111"),
        ("noise", ["percent": "10"], .integer, "1000"),
        ("noise", ["days": "30"], .date, "1984-06-30"),
        ("generalize", ["to": "year"], .date, "1984-06-30"),
        ("redact", [:], .text, "Call +1 (555) 123-4567 or mail bob@corp.example"),
    ]

    @Test("the same original, rule and key give the same output; another key another one", arguments: cases.indices)
    func deterministic(_ i: Int) throws {
        let (name, parameters, kind, value) = Self.cases[i]
        let r = rule(name, parameters)
        let a = try r.apply(value, kind: kind, key: key), b = try r.apply(value, kind: kind, key: key)
        #expect(a == b)
        #expect(a != value, "\(name) left \(value) unchanged")
        let keyed = !["mask", "generalize"].contains(name)
        if keyed { #expect(try r.apply(value, kind: kind, key: otherKey) != a, "\(name) ignores its key") }
    }

    @Test("hash of digits keeps the shape: every non-digit in place, as many digits")
    func digitsShape() throws {
        let out = try rule("hash", ["pattern": "digits"]).apply("+49 (30) 1234-5678", kind: .text, key: key)!
        #expect(out.count == "+49 (30) 1234-5678".count)
        #expect(out.map { $0.isNumber } == "+49 (30) 1234-5678".map { $0.isNumber })
        #expect(out.filter { !$0.isNumber } == "+ () -")
    }

    @Test("a keyed Feistel permutation is a bijection on its domain", arguments: [1, 2, 9, 10, 100, 1000, 4097] as [UInt64])
    func feistelBijection(size: UInt64) {
        let p = FeistelPermutation(size: size, key: key, domain: "t")
        let images = (0..<size).map(p.apply)
        #expect(Set(images).count == Int(size))
        #expect(images.allSatisfy { $0 < size })
    }

    @Test("a tabulated Feistel round gives what SipHash gives: every input of small domains, a sample of the large",
          arguments: [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000] as [UInt64])
    func feistelTable(size: UInt64) throws {
        let p = FeistelPermutation(size: size, key: key, domain: "table")
        let table = try #require(p.table, "a domain of \(size) is tabulated")
        var g = SystemRandomNumberGenerator()
        let domain = UInt64(1) << UInt64(2 * p.halfBits)
        let inputs: [UInt64] = domain <= 1 << 16 ? Array(0..<domain) : (0..<50_000).map { _ in UInt64.random(in: 0..<domain, using: &g) } + [0, domain - 1]
        for x in inputs where table.encrypt(x) != p.encrypt(x) {
            Issue.record("size \(size): the table gives \(table.encrypt(x)) for \(x), SipHash \(p.encrypt(x))")
            return
        }
    }

    @Test("domains past eight digits are not tabulated (a table would not fit in a cache)")
    func feistelNoTable() {
        #expect(FeistelPermutation(size: 1_000_000_000, key: key, domain: "table").table == nil)
        #expect(FeistelPermutation(size: 1 << 31, key: key, domain: "table").table == nil)
    }

    @Test("hash on integers is a bijection within each band, signs kept")
    func integerBijection() throws {
        let r = rule("hash")
        let values = Array(-2000...2000) + [Int(Int32.max), 1 << 40, -(1 << 40)]
        let out = try values.map { Int64(try r.apply(String($0), kind: .integer, key: key)!)! }
        #expect(Set(out).count == values.count)
        for (v, o) in zip(values, out) { #expect((v < 0) == (o < 0)) }
    }

    @Test("email keeps or replaces the domain; case does not change the result")
    func email() throws {
        let keep = try rule("email", ["keep_domain": "true"]).apply("Alice@Corp.Example", kind: .text, key: key)!
        #expect(keep.hasSuffix("@corp.example"))
        #expect(try rule("email").apply("Alice@Corp.Example", kind: .text, key: key)!.hasSuffix("@example.com"))
        #expect(try rule("email").apply("alice@corp.example", kind: .text, key: key) == rule("email").apply("ALICE@corp.example", kind: .text, key: key))
    }

    @Test("redact replaces the emails and phones it finds with the values the email and digit rules give")
    func redact() throws {
        let text = "Customer alice@example.org called from +1 (555) 123-4567 about order 42."
        let out = try rule("redact").apply(text, kind: .text, key: key)!
        #expect(!out.contains("alice@example.org") && !out.contains("123-4567"))
        #expect(try out.contains(rule("email").apply("alice@example.org", kind: .text, key: key)!))
        #expect(try out.contains(rule("hash", ["pattern": "digits"]).apply("+1 (555) 123-4567", kind: .text, key: key)!))
        #expect(out.contains("order 42."), "short numbers are not phones")
    }

    @Test("fake IBANs pass the mod-97 check")
    func iban() throws {
        for i in 0..<50 {
            let iban = try rule("fake", ["kind": "iban"]).apply("acct-\(i)", kind: .text, key: key)!
            let rearranged = iban.dropFirst(4) + iban.prefix(4)
            var remainder = 0
            for c in rearranged {
                let digits = c.isLetter ? String(Int(c.asciiValue!) - 55) : String(c)
                for d in digits { remainder = (remainder * 10 + Int(String(d))!) % 97 }
            }
            #expect(remainder == 1, "\(iban)")
        }
    }

    @Test("dates shift by whole days within the bound, and calendar arithmetic is exact")
    func dates() throws {
        for days in [-700_000, -1, 0, 59, 60, 365, 11_016, 2_932_896] { #expect(DayMath.parse(DayMath.format(days)) == days) }
        #expect(DayMath.parse("1970-01-01") == 0)
        #expect(DayMath.format(DayMath.parse("2024-02-28")! + 1) == "2024-02-29")
        let r = rule("noise", ["days": "30"])
        for i in 0..<200 {
            let original = DayMath.format(10_000 + i)
            let out = try r.apply(original, kind: .date, key: key)!
            #expect(abs(DayMath.parse(out)! - DayMath.parse(original)!) <= 30)
        }
        #expect(try rule("generalize", ["to": "month"]).apply("1984-06-30", kind: .date, key: key) == "1984-06-01")
        #expect(try rule("generalize", ["width": "10"]).apply("37", kind: .integer, key: key) == "30")
    }

    @Test("noise and generalize at the ends of 64 bits, NaN and infinities: a value, never a crash; a 32-bit value stays 32-bit")
    func numericEdges() throws {
        let noise = rule("noise", ["percent": "100"]), generalize = rule("generalize", ["width": "10"])
        for v in [Int64.max, Int64.min, Int64.max - 1, Int64.min + 1, 0, -1, Int64(Int32.max), Int64(Int32.min)] {
            let shifted = try noise.apply(String(v), kind: .integer, key: key).flatMap { Int64($0) }
            #expect(shifted != nil, "noise of \(v)")
            if Int64(Int32.min)...Int64(Int32.max) ~= v, let shifted { #expect(Int64(Int32.min)...Int64(Int32.max) ~= shifted) }
            let floor = try generalize.apply(String(v), kind: .integer, key: key).flatMap { Int64($0) }
            #expect(floor.map { $0 <= v && v - $0 < 10 || v < Int64.min + 10 } == true, "generalize of \(v): \(String(describing: floor))")
        }
        for value in ["NaN", "Infinity", "-Infinity", "1e300", "-1e300", "12.5"] {
            #expect(try noise.apply(value, kind: .decimal, key: key) != nil)
            #expect(try generalize.apply(value, kind: .decimal, key: key) != nil)
        }
        #expect(try generalize.apply("NaN", kind: .decimal, key: key) == "NaN")
        #expect(try generalize.apply("12.5", kind: .decimal, key: key) == "10")
    }

    @Test("bad rule entries are named by their path", arguments: [
        ("nosuch", [:], "tables.t.c: 'nosuch' is not a rule"),
        ("fake", [:], "tables.t.c: fake needs kind:"),
        ("fake", ["kind": "ssn"], "tables.t.c.kind: 'ssn' is not a fake kind"),
        ("hash", ["length": "4"], "tables.t.c.length: '4' must be a whole number from 8 to 52"),
        ("mask", ["keep_first": "x"], "tables.t.c.keep_first: 'x' must be a whole number"),
        ("email", ["domain": "x"], "tables.t.c.domain: email takes no parameter 'domain'"),
        ("constant", [:], "tables.t.c: constant needs value:"),
    ] as [(String, [String: String], String)])
    func badEntries(_ name: String, _ parameters: [String: String], _ message: String) {
        #expect(throws: AnonymizationError.self) { try RuleRegistry.make(name, parameters: parameters, path: "tables.t.c") }
        do { _ = try RuleRegistry.make(name, parameters: parameters, path: "tables.t.c") } catch {
            #expect(error.message.hasPrefix(message), "\(error.message)")
        }
    }

    @Test("keys shorter than 16 bytes, or none, are refused with how to set one")
    func keys() {
        #expect(throws: AnonymizationError.self) { try AnonymizationKey("short") }
        let missing = #expect(throws: AnonymizationError.self) { _ = try AnonymizationKey.fromEnvironment([:]) }
        #expect(missing?.message.contains("DBQ_ANONYMIZE_KEY") == true, "\(String(describing: missing))")
        // Long but predictable keys are refused too, naming why; random ones pass.
        for weak in ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "passwordpassword", "password12345678", "abababababababababababababababab"] {
            let error = #expect(throws: AnonymizationError.self) { _ = try AnonymizationKey(weak) }
            #expect(error?.message.contains("too predictable") == true, "\(weak): \(String(describing: error))")
        }
        #expect(throws: Never.self) { _ = try AnonymizationKey("3f9a0c6e5b1d47a2c8e04f6b9d2a7c15e3b8f0a46d1c9e72b5a3f8c0d6e4b1a9") }
        // The fingerprint: salted and slow, so no two exports show the same text and a guess
        // costs a PBKDF2; the key that made it is recognised, another is not.
        let first = key.fingerprint(), second = key.fingerprint()
        #expect(first.hasPrefix("v2:") && first.split(separator: ":").map(\.count) == [2, 32, 16] && first != second)
        #expect(key.matches(fingerprint: first) == true && key.matches(fingerprint: second) == true)
        #expect(otherKey.matches(fingerprint: first) == false)
        #expect(key.fingerprint(salt: Array(repeating: 7, count: 16)) == key.fingerprint(salt: Array(repeating: 7, count: 16)))
        // The v1 form older manifests hold still names its key; anything else is not a fingerprint.
        let v1 = String(hex(key.mac(domain: "dbq:fingerprint", Array("v1".utf8))).prefix(16))
        #expect(key.matches(fingerprint: v1) == true && otherKey.matches(fingerprint: v1) == false)
        #expect(key.matches(fingerprint: "v2:zz:00") == nil && key.matches(fingerprint: "") == nil)
    }
}

@Suite("COPY text rows")
struct CopyTextTests {
    @Test("decode and encode are inverses for tabs, newlines, backslashes, NULL and the literal \\N")
    func roundTrip() {
        let rows: [[String?]] = [["a", nil, "b\tc", "line\nbreak", "back\\slash", "\\N", "", "ünï"], [nil], [""], ["x\ry"]]
        for row in rows {
            var line: [UInt8] = []
            CopyText.encode(row, into: &line)
            #expect(line.last == 0x0A)
            #expect(CopyText.decode(line.dropLast()) == row)
        }
    }
}

/// Nothing passes through because a rule could not read a value.
@Suite("Masking fails closed")
struct FailClosedTests {
    let key = try! AnonymizationKey("fail-closed-key-0123456789")

    func rule(_ name: String, _ parameters: [String: String] = [:]) throws -> any MaskingRule {
        try RuleRegistry.make(name, parameters: parameters, path: "t")
    }

    @Test("hash maps every 64-bit integer: the ends of every band move, stay distinct, keep their sign and their band")
    func hashEveryInteger() throws {
        let r = try rule("hash")
        let edges: [Int64] = [0, 1, (1 << 31) - 1, 1 << 31, (1 << 62) - 1, 1 << 62, (1 << 62) + 5, .max,
                              -1, -(1 << 31), -(1 << 31) - 1, -(1 << 62), -(1 << 62) - 1, .min]
        var g = SystemRandomNumberGenerator()
        let values = edges + (0..<5000).map { _ in Int64(bitPattern: g.next()) }
        let out = try values.map { Int64(try r.apply(String($0), kind: .integer, key: key)!)! }
        #expect(Set(out).count == Set(values).count, "distinct stays distinct")
        // Bands: magnitudes below 2^15, then one per bit length.
        func band(_ v: Int64) -> Int {
            let m = v < 0 ? UInt64(-(v + 1)) : UInt64(v)
            return (v < 0 ? -1 : 1) * max(1, 64 - m.leadingZeroBitCount - 14)
        }
        let kept = zip(values, out).filter { $0 == $1 && abs(band($0)) != 1 }.map(\.0)
        #expect(kept.isEmpty, "kept unchanged: \(kept.prefix(5))")
        for (v, o) in zip(values, out) { #expect(band(v) == band(o), "\(v) left its band: \(o)") }
    }

    @Test("hash keeps integer keys near their range: smallints stay smallints, an integer serial's ids stay under twice its largest")
    func hashKeepsIntegerRanges() throws {
        let r = try rule("hash")
        let small = try (Int64(Int16.min)...Int64(Int16.max)).map { Int64(try r.apply(String($0), kind: .integer, key: key)!)! }
        #expect(small.allSatisfy { Int16(exactly: $0) != nil }, "a smallint hashed overflowed")
        #expect(Set(small).count == 65536)
        let serial = try (1...100_000 as ClosedRange<Int64>).map { Int64(try r.apply(String($0), kind: .integer, key: key)!)! }
        #expect(serial.max()! < 200_000 && serial.min()! >= 0, "largest \(serial.max()!)")
        #expect(Set(serial).count == 100_000)
        #expect(zip(1...100_000, serial).filter { $0 == $1 }.count < 20, "ids kept in place")
    }

    @Test("a value noise, generalize or hash cannot read is refused, and the message never quotes it",
          arguments: [("noise", ValueKind.integer, "12x"), ("noise", .date, "23/04/1987"), ("noise", .timestamp, "04/23/1987 10:00:00"),
                      ("noise", .decimal, "1,5"), ("generalize", .date, "1987.04.23"), ("generalize", .integer, "4e3"),
                      ("generalize", .decimal, "n/a"), ("hash", .integer, "0x1F")])
    func unreadable(_ name: String, _ kind: ValueKind, _ value: String) throws {
        let r = try rule(name)
        do {
            let out = try r.apply(value, kind: kind, key: key)
            Issue.record("\(name) on \(kind) '\(value)' gave \(out ?? "NULL")")
        } catch {
            #expect(!error.message.contains(value), "\(error.message)")
            #expect(error.message.contains(name), "\(error.message)")
        }
    }

    @Test("infinities and NaN (no person in them) are kept by noise and generalize")
    func specialValues() throws {
        for (kind, value) in [(ValueKind.decimal, "NaN"), (.decimal, "-Infinity"), (.date, "infinity"), (.timestamp, "-infinity")] {
            #expect(try rule("noise").apply(value, kind: kind, key: key) == value)
            #expect(try rule("generalize").apply(value, kind: kind, key: key) == value)
        }
    }

    @Test("types are matched by their whole name: arrays are not numbers, modifiers do not matter")
    func kinds() {
        #expect(ValueKind(postgresType: "numeric[]") == .other)
        #expect(ValueKind(postgresType: "numeric(10,2)[]") == .other)
        #expect(ValueKind(postgresType: "timestamp with time zone[]") == .other)
        #expect(ValueKind(postgresType: "numeric(10,2)") == .decimal)
        #expect(ValueKind(postgresType: "character varying(20)") == .text)
        #expect(ValueKind(postgresType: "timestamp(3) with time zone") == .timestamp)
        #expect(ValueKind(postgresType: "numericish") == .other)
        #expect(ValueKind(postgresType: "time without time zone") == .other)
        #expect(ValueKind(postgresType: "interval") == .other)
    }

    @Test("a row whose value cannot be masked names its column and its row within the text")
    func transformerNamesColumnAndRow() throws {
        let plan = [AnonymizationPlan.ColumnPlan(name: "id", kind: .integer, rule: try rule("keep"), source: "t.id"),
                    AnonymizationPlan.ColumnPlan(name: "born", kind: .date, rule: try rule("noise"), source: "t.born")]
        let transformer = RowTransformer(columns: plan, key: key)
        let text = Array("1\t1980-01-01\n2\t1980-01-02\n3\t31/12/1980\n".utf8)
        var out: [UInt8] = []
        do {
            _ = try text.withUnsafeBytes { bytes in Result { () throws(AnonymizationError) in try transformer.transform(lines: bytes, into: &out) } }.get()
            Issue.record("the third row passed")
        } catch {
            #expect(error.row == 3)
            #expect(error.message.hasPrefix("column born: noise"), "\(error.message)")
            #expect(!error.message.contains("31/12/1980"))
        }
    }
}
