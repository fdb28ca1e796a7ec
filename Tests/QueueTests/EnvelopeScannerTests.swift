import Foundation
@testable import Queue
import Testing

@Suite("Envelope scanner: the worker's fast path reads what JSONDecoder reads, and nothing it refuses")
struct EnvelopeScannerTests {
    struct Header: Decodable, Equatable { var id: String; var kind: String; var version: Int; var queue: String; var maxAttempts: Int; var timeoutSeconds: Double }

    static func random(_ g: inout SystemRandomNumberGenerator, depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &g) {
        case 0: return .string(["", "plain", "quote \" and \\ backslash", "tab\there\nline", "ünïcödé ☃", "{[\"]}"].randomElement(using: &g)!)
        case 1: return .number([0, 1, -3, 2.5, 1e-7, 123456789].randomElement(using: &g)!)
        case 2: return .bool(Bool.random(using: &g))
        case 3: return .null
        case 4: return .array((0..<Int.random(in: 0..<4, using: &g)).map { _ in random(&g, depth: depth + 1) })
        default:
            var o: [String: JSONValue] = [:]
            for k in 0..<Int.random(in: 0..<4, using: &g) { o["k\(k)\(["", "\"", "}"].randomElement(using: &g)!)"] = random(&g, depth: depth + 1) }
            return .object(o)
        }
    }

    @Test("on 3,000 random envelopes (payloads with escapes, nesting, unicode) the fields and payload are JSONDecoder's")
    func agrees() throws {
        var g = SystemRandomNumberGenerator()
        let decoder = JobEnvelope.decoder
        var fast = 0
        for n in 0..<3000 {
            var envelope = JobEnvelope(kind: ["noop", "backup", "sleep"].randomElement(using: &g)!, version: Int.random(in: 1...3, using: &g),
                                       payload: Self.random(&g), queue: "q\(n % 7)", priority: Int.random(in: 0...9, using: &g),
                                       maxAttempts: Int.random(in: 1...9, using: &g), timeoutSeconds: Double(Int.random(in: 1...9_999_999, using: &g)) / 1000)
            if n % 5 == 0 { envelope.uniqueKey = "u\\\"\(n)" }
            var text = String(decoding: try JSONEncoder().encode(envelope), as: UTF8.self)
            if n % 3 == 0 { text = text.replacingOccurrences(of: ",", with: " ,\n ").replacingOccurrences(of: ":", with: " : ") }
            let expected = try decoder.decode(Header.self, from: Data(text.utf8))
            let expectedPayload = try decoder.decode(JobEnvelope.self, from: Data(text.utf8)).payload
            var copy = text
            let scanned = copy.withUTF8 { EnvelopeScanner.scan(UnsafeRawBufferPointer($0)) }
            guard let scanned else { continue }
            fast += 1
            let h = scanned.header
            #expect(Header(id: h.id, kind: h.kind, version: h.version, queue: h.queue, maxAttempts: h.maxAttempts,
                           timeoutSeconds: h.timeoutSeconds) == expected, "\(text)")
            let slice = Array(text.utf8)[scanned.payload]
            #expect(try decoder.decode(JSONValue.self, from: Data(slice)) == expectedPayload, "\(text)")
        }
        #expect(fast >= 2900, "the fast path took only \(fast) of 3000")
    }

    @Test("what JSONDecoder refuses, or what the fast path does not read, goes to the slow path", arguments: [
        "", "{}", "[]", "{\"id\":\"a\"}", "{not json",
        #"{"id":"a","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{}"#,
        #"{"id":"a","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{},}"#,
        #"{"id":"a","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{]}"#,
        #"{"id":"a","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{},"x":tru}"#,
        #"{"id":"a","kind":"noop","version":01,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{}}"#,
        #"{"id":"a","kind":"noop","version":1.5,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{}}"#,
        #"{"id":"a","kind":"no\u006fp","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{}}"#,
        #"{"id":"a","id":"b","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{}}"#,
        #"{"id":"a","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":+60,"payload":{}}"#,
        #"{"id":"a","kind":"noop","version":1,"queue":"q","maxAttempts":3,"timeoutSeconds":60,"payload":{}} x"#,
    ])
    func refuses(_ text: String) {
        var copy = text
        #expect(copy.withUTF8 { EnvelopeScanner.scan(UnsafeRawBufferPointer($0)) } == nil, "\(text)")
    }

    @Test("a registry decodes the header and the typed payload on both paths alike, errors worded the same")
    func registryPaths() throws {
        var registry = JobRegistry()
        registry.register(SleepJob())
        let decoder = registry.envelopeDecoder()
        let good = String(decoding: try JSONEncoder().encode(JobEnvelope(kind: "sleep", version: 1, payload: .object(["seconds": .number(0.5)]), queue: "q")), as: UTF8.self)
        let bad = String(decoding: try JSONEncoder().encode(JobEnvelope(kind: "sleep", version: 1, payload: .object(["seconds": .string("soon")]), queue: "q")), as: UTF8.self)
        // The slow path: the same envelopes with an escape in the queue name.
        let slowGood = good.replacingOccurrences(of: "\"queue\":\"q\"", with: "\"queue\":\"\\u0071\"")
        let slowBad = bad.replacingOccurrences(of: "\"queue\":\"q\"", with: "\"queue\":\"\\u0071\"")
        for (text, slow) in [(good, false), (slowGood, true)] {
            var copy = text
            #expect((copy.withUTF8 { EnvelopeScanner.scan(UnsafeRawBufferPointer($0)) } == nil) == slow)
            let job = try registry.decodeEnvelope(text, decoder: decoder)
            #expect(job.header.kind == "sleep" && job.header.queue == "q")
            #expect((try job.payload?.get() as? SleepJob.Payload)?.seconds == 0.5)
        }
        var messages: [String] = []
        for text in [bad, slowBad] {
            let job = try registry.decodeEnvelope(text, decoder: decoder)
            guard case .failure(let error)? = job.payload else { Issue.record("\(text) decoded"); continue }
            messages.append("\(error)")
        }
        #expect(messages.count == 2 && messages[0] == messages[1], "\(messages)")
        #expect(messages.first?.contains("'seconds' should be Double") == true, "\(messages)")
    }
}
