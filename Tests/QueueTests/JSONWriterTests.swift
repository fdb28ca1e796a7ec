import Foundation
@testable import Queue
import Testing

@Suite("JSON writer: envelopes and results read back as JSONEncoder's do")
struct JSONWriterTests {
    @Test("3,000 random envelopes: the written JSON decodes to the same envelope; strings escaped byte for byte as JSONEncoder escapes them")
    func roundTrip() throws {
        var g = SystemRandomNumberGenerator()
        let strings = ["", "plain", "quote \" backslash \\ slash /", "ctrl \u{01}\u{1f}\t\n\r\u{08}\u{0c}", "ünïcödé ☃ 🚀", "\u{7f}"]
        for n in 0..<3000 {
            let payload = EnvelopeScannerTests.random(&g)
            var e = JobEnvelope(kind: "noop", version: 1 + n % 3, payload: payload, queue: "q\(n % 5)", priority: n % 10, maxAttempts: 1 + n % 9,
                                timeoutSeconds: [0.2, 60, 3600, 1.5e-3].randomElement(using: &g)!,
                                runAt: n % 4 == 0 ? Date(timeIntervalSince1970: 1_800_000_000.123) : nil,
                                uniqueKey: n % 3 == 0 ? strings.randomElement(using: &g)! + "u" : nil,
                                enqueuedBy: strings.randomElement(using: &g)!, traceparent: n % 7 == 0 ? "00-abc-def-01" : nil)
            e.enqueuedAt = Date(timeIntervalSince1970: Double(n) * 12.345)
            let decoded = try JobEnvelope.decoder.decode(JobEnvelope.self, from: Data(e.encoded().utf8))
            #expect(decoded == e, "\(e.encoded())")
        }
        for s in strings {
            let ours = JSONValue.string(s).jsonText
            let theirs = String(decoding: try JobEnvelope.encoder.encode([s]), as: UTF8.self).dropFirst().dropLast()
            #expect(ours == String(theirs), "\(s.debugDescription)")
        }
        #expect(JSONValue.object(["b": .number(1), "a": .array([.null, .bool(true), .number(2.5)])]).jsonText == #"{"a":[null,true,2.5],"b":1}"#)
    }
}
