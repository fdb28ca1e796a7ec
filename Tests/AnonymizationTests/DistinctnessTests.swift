@testable import Anonymization
import Testing

/// Every rule that claims to keep distinct values distinct (what a unique column needs),
/// checked over generated values built to collide: case variants, leading zeros, the ends
/// of the integer range, near-identical strings.
@Suite("Uniqueness claims: each rule that keeps distinct values distinct does, over values built to collide")
struct DistinctnessTests {
    static let key = try! AnonymizationKey("distinct-key-5f1c0e9a7b3d2468")
    static let count = 20_000

    struct Generator {
        var state: UInt64
        /// SplitMix64 (an LCG's low bits repeat too soon: 4-bit picks cycled after about a
        /// thousand UUIDs).
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func pick(_ s: String) -> Character { Array(s)[Int(next() % UInt64(s.count))] }
    }

    /// 20,000 distinct values of a kind, many differing only in case, zeros or one character.
    static func values(_ kind: ValueKind) -> [String] {
        var g = Generator(state: 42)
        var out = Set<String>()
        while out.count < Self.count {
            switch kind {
            case .text:
                let local = String((0..<(3 + Int(g.next() % 6))).map { _ in g.pick("abcdeABCDE._-+0") })
                let domain = ["x.com", "X.com", "x.COM", "mail.example", "Mail.Example"][Int(g.next() % 5)]
                let email = local + "@" + domain
                out.insert(email)
                out.insert(email.uppercased())
                out.insert(email.lowercased())
            case .integer:
                let ends: [Int64] = [.min, .min + 1, -1, 0, 1, .max - 1, .max, 1 << 62, -(1 << 62), (1 << 62) - 1, 1 << 31, -(1 << 31)]
                out.insert(String(ends[Int(g.next() % UInt64(ends.count))] &+ Int64(bitPattern: g.next() % 5_000)))
                out.insert(String(Int64(bitPattern: g.next() << 11 ^ g.next())))
            case .uuid:
                let hex = (0..<32).map { _ in g.pick("0123456789abcdef") }
                out.insert(String(hex[0..<8]) + "-" + String(hex[8..<12]) + "-" + String(hex[12..<16]) + "-" + String(hex[16..<20]) + "-" + String(hex[20..<32]))
            default:
                out.insert(String(g.next()))
            }
        }
        return Array(out)
    }

    static let claims: [(String, ValueKind)] = [
        ("{rule: email, length: 52, case: keep}", .text),
        ("{rule: email, length: 52, case: keep, keep_domain: true}", .text),
        ("hash", .text),
        ("{rule: hash, pattern: digits}", .text),
        ("hash", .integer),
        ("hash", .uuid),
        ("{rule: fake, kind: uuid}", .uuid),
        ("keep", .text),
    ]

    @Test("distinct in, distinct out", arguments: claims.map(\.0).indices)
    func distinct(_ index: Int) throws {
        let (spec, kind) = Self.claims[index]
        let rule = try AnonymizationPolicy.rule(PersonalDataScanner.yamlValue(spec), path: "test")
        #expect(rule.keepsDistinct, "\(spec) is listed as keeping values distinct")
        var inputs = Self.values(kind)
        if spec.contains("digits") { inputs = inputs.map { String($0.unicodeScalars.map { String($0.value % 10) }.joined().prefix(12)) } }
        inputs = Array(Set(inputs))
        let prepared = rule.prepared(kind: kind, key: Self.key)
        var seen: [String: String] = [:]
        var collisions = 0
        for value in inputs {
            guard let masked = try prepared.apply(value) else { continue }
            if let other = seen[masked], other != value { collisions += 1 } else { seen[masked] = value }
        }
        #expect(collisions == 0, "\(spec) on \(kind): \(collisions) of \(inputs.count) distinct values collided")
    }

    @Test("the issue's case: 2,000 e-mails that differ only in case collide under the folding rule (which therefore does not claim distinctness), not under case: keep")
    func caseVariants() throws {
        let inputs = (0..<1_000).flatMap { ["User\($0)@Example.com", "user\($0)@example.com"] }
        for (spec, claims) in [("{rule: email, length: 52}", false), ("{rule: email, length: 52, case: keep}", true)] {
            let rule = try AnonymizationPolicy.rule(PersonalDataScanner.yamlValue(spec), path: "test")
            let outputs = try inputs.map { try rule.apply($0, kind: .text, key: Self.key) }
            #expect(rule.keepsDistinct == claims)
            #expect((Set(outputs).count == inputs.count) == claims, "\(spec): \(Set(outputs).count) distinct of \(inputs.count)")
        }
    }
}
