@testable import Anonymization
import Backups
import Codecs
@testable import DatabaseJobs
import DBQSupport
@testable import Exports
import Queue
import Testing

/// The export's pipe on its own: whatever the chunks the server's bytes come in, the
/// output is the rows masked one by one, in order, and the counts are the rows'.
@Suite("Masking pipe: chunks in any shape, rows out in order")
struct MaskingPipeTests {
    static let key = try! AnonymizationKey("pipe-key-0123456789abcdef")

    static func columns() throws -> [AnonymizationPlan.ColumnPlan] {
        [
            .init(name: "id", kind: .integer, rule: try RuleRegistry.make("keep", parameters: [:], path: "id"), source: "test"),
            .init(name: "email", kind: .text, rule: try RuleRegistry.make("hash", parameters: [:], path: "email"), source: "test"),
            .init(name: "note", kind: .text, rule: try RuleRegistry.make("redact", parameters: [:], path: "note"), source: "test"),
        ]
    }

    /// Rows of every length, a few longer than several chunks, as COPY text.
    static func copyText(rows: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var text: [UInt8] = []
        for i in 0..<rows {
            let long = rng.next() % 500 == 0
            let note = String(repeating: "call +49 30 \(rng.next() % 10_000_000) or x\(i)@mail.example ", count: long ? 2_000 : Int(rng.next() % 4))
            let email = rng.next() % 10 == 0 ? "\\N" : "person\(i)@mail\(i % 7).example"
            text += Array("\(i)\t\(email)\t\(note)\n".utf8)
        }
        return text
    }

    /// `bytes` cut into chunks of 1 byte to `most` bytes (lines cut anywhere).
    static func chunks(_ bytes: [UInt8], most: Int, seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        var out: [[UInt8]] = []
        var at = 0
        while at < bytes.count {
            let n = min(bytes.count - at, 1 + Int(rng.next() % UInt64(most)))
            out.append(Array(bytes[at..<(at + n)]))
            at += n
        }
        return out
    }

    static func drain(_ pipe: MaskingPipe) async throws -> [UInt8] {
        var out: [UInt8] = []
        for try await chunk in pipe.stream() { out += chunk }
        return out
    }

    @Test("masked: the same bytes as masking line by line, for chunks from 1 byte to 200 KiB", arguments: [16, 4_096, 200 << 10])
    func maskedInOrder(most: Int) async throws {
        let text = Self.copyText(rows: 3_000, seed: UInt64(most))
        let transformer = RowTransformer(columns: try Self.columns(), key: Self.key)
        var expected: [UInt8] = []
        for line in text.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            try transformer.transform(line, into: &expected)
        }
        let pipe = try MaskingPipe(source: .chunks(Self.chunks(text, most: most, seed: 7)), transformer: transformer, compressor: try Compressor(codec: .none))
        let out = try await Self.drain(pipe)
        #expect(out == expected)
        #expect(pipe.rows == 3_000)
        #expect(pipe.rawBytes == Int64(expected.count))
    }

    @Test("nothing masked: the bytes pass as they came, rows counted; compressed, they decompress to the same")
    func identity() async throws {
        let text = Self.copyText(rows: 2_000, seed: 3)
        let keep = try RuleRegistry.make("keep", parameters: [:], path: "c")
        let transformer = RowTransformer(columns: try Self.columns().map { .init(name: $0.name, kind: $0.kind, rule: keep, source: "test") }, key: nil)
        let plain = try MaskingPipe(source: .chunks(Self.chunks(text, most: 3_000, seed: 5)), transformer: transformer, compressor: try Compressor(codec: .none))
        #expect(try await Self.drain(plain) == text)
        #expect(plain.rows == 2_000)
        let packed = try MaskingPipe(source: .chunks(Self.chunks(text, most: 3_000, seed: 6)), transformer: transformer, compressor: try Compressor(codec: .zstd))
        let compressed = try await Self.drain(packed)
        let decompressor = try Decompressor(codec: .zstd)
        var back: [UInt8] = []
        try decompressor.decompress(compressed) { back.append(contentsOf: $0) }
        try decompressor.finish()
        #expect(back == text)
    }

    @Test("a stream that ends inside a row fails (retryable), masked or not; an empty CSV table is its header")
    func endings() async throws {
        let transformer = RowTransformer(columns: try Self.columns(), key: Self.key)
        let cut = try MaskingPipe(source: .chunks([Array("1\ta@b.example\tx\n2\tc@d".utf8)]), transformer: transformer, compressor: try Compressor(codec: .none))
        await #expect(throws: JobError.self) { _ = try await Self.drain(cut) }
        let keep = try RuleRegistry.make("keep", parameters: [:], path: "c")
        let plain = RowTransformer(columns: try Self.columns().map { .init(name: $0.name, kind: $0.kind, rule: keep, source: "test") }, key: nil)
        let cutPlain = try MaskingPipe(source: .chunks([Array("1\tx\ty\n2\t".utf8)]), transformer: plain, compressor: try Compressor(codec: .none))
        await #expect(throws: JobError.self) { _ = try await Self.drain(cutPlain) }
        let csv = RowTransformer(columns: try Self.columns(), key: Self.key, format: .csv)
        let empty = try MaskingPipe(source: .chunks([]), transformer: csv, compressor: try Compressor(codec: .none))
        #expect(String(decoding: try await Self.drain(empty), as: UTF8.self) == "id,email,note\n")
        #expect(empty.rows == 0)
    }
}
