@testable import Anonymization
import FeistelKernel
import Foundation
import Testing

/// The vector kernel and the batch that feeds it: the same numbers as one permutation at
/// a time, on every vector unit this CPU has, and the same bytes out of a chunk of rows.
@Suite("Permutation batches: eight Feistel permutations side by side, the same output")
struct PermutationBatchTests {
    static let key = try! AnonymizationKey("batch-key-0123456789abcdef")

    /// Every level this CPU runs (the portable one always).
    static var levels: [dbq_feistel_level] {
        [DBQ_FEISTEL_PORTABLE, DBQ_FEISTEL_AVX2, DBQ_FEISTEL_AVX512].filter { $0.rawValue <= dbq_feistel_best_level().rawValue }
    }

    @Test("the kernel gives FeistelPermutation.apply's value, at every level, on domains of 1 to 64 bits", arguments: Array(1...32))
    func kernelMatches(halfBits: Int) {
        var rng = SystemRandomNumberGenerator()
        // Sizes across the domain of this half width: its smallest, a random one, its largest.
        let low: UInt64 = halfBits == 1 ? 1 : (UInt64(1) << UInt64(2 * halfBits - 2)) + 1
        let high: UInt64 = halfBits == 32 ? .max : UInt64(1) << UInt64(2 * halfBits)
        for size in [low, UInt64.random(in: low...high, using: &rng), high] {
            let p = FeistelPermutation(size: size, key: Self.key, domain: "kernel:\(size)")
            #expect(p.halfBits == halfBits)
            // 0, the last, and random values: counts that leave lanes empty at the end.
            let count = Int.random(in: 1...203, using: &rng)
            let inputs = [0, size - 1] + (0..<count).map { _ in UInt64.random(in: 0..<size, using: &rng) }
            let expected = inputs.map(p.apply)
            for level in Self.levels {
                var values = inputs
                let used = values.withUnsafeMutableBufferPointer {
                    dbq_feistel_permute(p.k0, p.k1, UInt32(p.halfBits), p.size, $0.baseAddress, $0.count, level)
                }
                #expect(used == level)
                #expect(values == expected, "size \(size), level \(level.rawValue)")
            }
        }
    }

    @Test("an empty batch, and a level above the CPU's, fall back without harm")
    func edges() {
        #expect(dbq_feistel_permute(1, 2, 19, 100_000_000_000, nil, 0, DBQ_FEISTEL_AVX512).rawValue <= dbq_feistel_best_level().rawValue)
        var out: [UInt8] = Array("x".utf8)
        var batch = PermutationBatch(deferring: true)
        batch.run(on: &out)
        #expect(out == Array("x".utf8) && batch.isEmpty)
    }

    static func rule(_ name: String, _ parameters: [String: String] = [:]) -> any MaskingRule {
        try! RuleRegistry.make(name, parameters: parameters, path: "t")
    }

    /// Rows whose masking defers: phone numbers of 7 to 48 digits in free text (escapes in
    /// some, so masked text is escaped again mid-chunk), digit strings of 1 to 25 digits
    /// (each count its own key; past 18 digits a second run, another key), NULLs, and short
    /// numbers that are permuted at once.
    static func rows(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = MaskingGolden.Seeded(state: seed)
        func digits(_ count: Int) -> String { String((0..<count).map { _ in Character(String(rng.next() % 10)) }) }
        var text: [UInt8] = []
        for i in 0..<n {
            var note = "ticket \(i): call +\(digits(2)) \(digits(Int(rng.next() % 12)))-\(digits(5 + Int(rng.next() % 30)))"
            if rng.next() % 4 == 0 { note += "\\tthen\\\\ \\n x\(i)@mail.example or (\(digits(3))) \(digits(7))" }
            if rng.next() % 9 == 0 { note = "\\N" }
            let national = rng.next() % 7 == 0 ? "\\N" : digits(1 + Int(rng.next() % 25))
            text += Array("\(i)\t\(note)\t\(national)\t\(digits(11))\n".utf8)
        }
        return text
    }

    @Test("transform(lines:) writes what transform writes line by line", arguments: [1, 17, 2_000] as [Int])
    func linesEqualOneByOne(rows: Int) throws {
        let columns: [AnonymizationPlan.ColumnPlan] = [
            .init(name: "id", kind: .integer, rule: Self.rule("keep"), source: "test"),
            .init(name: "note", kind: .text, rule: Self.rule("redact"), source: "test"),
            .init(name: "national", kind: .text, rule: Self.rule("hash", ["pattern": "digits"]), source: "test"),
            .init(name: "phone", kind: .text, rule: Self.rule("hash", ["pattern": "digits"]), source: "test"),
        ]
        let transformer = RowTransformer(columns: columns, key: Self.key)
        let text = Self.rows(rows, seed: UInt64(rows))
        var expected: [UInt8] = []
        for line in text.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            try transformer.transform(line, into: &expected)
        }
        var out: [UInt8] = Array("kept prefix\n".utf8)
        let count = try text.withUnsafeBytes { try transformer.transform(lines: $0, into: &out) }
        #expect(count == rows)
        #expect(out == Array("kept prefix\n".utf8) + expected)
        // And the masking did something: no row came out as it went in.
        #expect(expected != text)
    }
}

