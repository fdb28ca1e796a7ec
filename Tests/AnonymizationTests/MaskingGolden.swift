@testable import Anonymization
import Crypto
import Foundation

/// Seeded inputs for the golden vectors of the masking rules: outputs must never change
/// (an export masked today must join with one masked last month under the same key).
enum MaskingGolden {
    /// SplitMix64: the same inputs on every machine and run.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
    }

    static func configurations() -> [(String, any MaskingRule, ValueKind)] {
        func r(_ name: String, _ p: [String: String] = [:]) -> any MaskingRule { try! RuleRegistry.make(name, parameters: p, path: "golden") }
        var list: [(String, any MaskingRule, ValueKind)] = [
            ("hash-text", r("hash"), .text),
            ("hash-short-prefix", r("hash", ["length": "16", "prefix": "h_"]), .text),
            ("hash-digits", r("hash", ["pattern": "digits"]), .text),
            ("hash-integer", r("hash"), .integer),
            ("hash-uuid", r("hash"), .uuid),
            ("email", r("email"), .text),
            ("email-keep-52", r("email", ["keep_domain": "true", "length": "52"]), .text),
            ("redact", r("redact"), .text),
            ("redact-keep-52", r("redact", ["email_length": "52", "keep_domain": "true"]), .text),
            ("mask", r("mask", ["keep_first": "2", "keep_last": "3"]), .text),
            ("constant", r("constant", ["value": "x"]), .text),
            ("noise-int", r("noise", ["percent": "10"]), .integer),
            ("noise-date", r("noise", ["days": "30"]), .date),
            ("generalize-year", r("generalize", ["to": "year"]), .date),
        ]
        for kind in Fake.kinds { list.append(("fake-\(kind)", r("fake", ["kind": kind]), kind == "uuid" ? .uuid : .text)) }
        return list
    }

    static let words = ["ticket", "Grüße", "call", "mail", "from", "ok", "тест", "naïve", "please", "12", "x", "日本"]
    static let domains = ["example.org", "Mail.EXAMPLE.com", "bücher.de", "a.io", "corp.example"]

    static func inputs(for kind: ValueKind, label: String, count: Int = 3000) -> [String] {
        var g = Seeded(state: UInt64(truncatingIfNeeded: label.utf8.reduce(5381) { ($0 << 5) &+ $0 &+ Int($1) }))
        func pick<T>(_ a: [T]) -> T { a[Int(g.next() % UInt64(a.count))] }
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(String(g.next() % 10)) }) }
        func email() -> String {
            let local = pick(["Alice", "bob.smith", "Jürgen", "x_y+z", "O'Neil", "person42", "A.B-C"]) + digits(Int(g.next() % 4))
            return local + "@" + pick(domains)
        }
        func phone() -> String {
            pick(["+49 30 " + digits(7), "(555) " + digits(3) + "-" + digits(4), digits(12), "+1 555." + digits(3) + "." + digits(4),
                  digits(25), "12-34", "0" + digits(6)])
        }
        let topBandNegative = String(-(Int64(1) << 62) - 7)
        return (0..<count).map { i in
            switch kind {
            case .integer:
                return pick([String(Int64(bitPattern: g.next())), String(Int(g.next() % 1000)), String(-Int(g.next() % 100_000)),
                             String(Int64.max), String(Int64.min), topBandNegative, String(Int64(1) << 31), String((Int64(1) << 62) + 5)])
            case .uuid:
                var b = (0..<16).map { _ in UInt8(truncatingIfNeeded: g.next()) }
                b[6] = b[6] & 0x0F | 0x40
                let h = b.map { String(format: "%02x", $0) }.joined()
                let c = Array(h)
                return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
            case .date:
                return String(format: "%04d-%02d-%02d", 1900 + Int(g.next() % 150), 1 + Int(g.next() % 12), 1 + Int(g.next() % 28))
            default:
                switch i % 4 {
                case 0: return email()
                case 1: return phone()
                case 2: return (0..<Int(g.next() % 9)).map { _ in pick(words + [email(), phone(), "\t", "a\\b", "\n"]) }.joined(separator: " ")
                default: return pick(words) + digits(Int(g.next() % 20)) + pick(["", "@", "@@x.io", " ", "ÄÖÜ"])
                }
            }
        }
    }

    /// SHA-256 over every output (NULL as a zero byte), separated by 0x01.
    static func digest(_ outputs: [String?]) -> String {
        var h = SHA256()
        for o in outputs {
            if let o { h.update(data: Array(o.utf8)) } else { h.update(data: [0]) }
            h.update(data: [1])
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
