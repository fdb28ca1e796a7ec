import DBQSupport
import Foundation
import Queue
import Testing

@Suite("Retry decisions")
struct RetryPolicyTests {
    let policy = RetryPolicy(backoff: Backoff(base: .seconds(1), cap: .seconds(60)))

    @Test("every attempt × max × retryable combination", arguments: 1...6, 1...5)
    func decisions(attempt: Int, maxAttempts: Int) {
        var generator = SplitMix64(seed: UInt64(attempt * 10 + maxAttempts))
        let retryable = policy.decide(attempt: attempt, maxAttempts: maxAttempts, error: .retryable("lost"), using: &generator)
        if attempt >= maxAttempts {
            #expect(retryable == .dead(reason: "failed \(attempt) of \(maxAttempts) attempts; last error: lost"))
        } else {
            guard case .retry(let delay) = retryable else { Issue.record("expected a retry"); return }
            #expect(delay >= .zero && delay < policy.backoff.ceiling(attempt: attempt - 1))
        }
        let permanent = policy.decide(attempt: attempt, maxAttempts: maxAttempts, error: .permanent("bad payload"), using: &generator)
        #expect(permanent == .dead(reason: "not retryable: bad payload"))
    }

    @Test("errors are classified by type")
    func classify() {
        struct Transient: TransientError { var isTransient: Bool }
        struct Other: Error {}
        #expect(JobError.classify(JobError.permanent("x")).isRetryable == false)
        #expect(JobError.classify(Transient(isTransient: true)).isRetryable == true)
        #expect(JobError.classify(Transient(isTransient: false)).isRetryable == false)
        #expect(JobError.classify(Other()).isRetryable == true)
        #expect(JobError.classify(DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "x"))).isRetryable == false)
    }
}

@Suite("Job ids, envelopes and queue lists")
struct EnvelopeTests {
    @Test("UUIDv7: well formed, version 7, ordered by time")
    func ids() {
        var generator = SplitMix64(seed: 3)
        let early = JobID.make(now: Date(timeIntervalSince1970: 1_700_000_000), using: &generator)
        let late = JobID.make(now: Date(timeIntervalSince1970: 1_700_000_001), using: &generator)
        #expect(JobID.isValid(early) && JobID.isValid(late))
        #expect(Array(early)[14] == "7")
        #expect("89ab".contains(Array(early)[19]))
        #expect(early < late)
        #expect(!JobID.isValid("not-an-id"))
        #expect(Set((0..<1000).map { _ in JobID.make() }).count == 1000)
    }

    @Test("the envelope's JSON shape is stable")
    func shape() throws {
        let envelope = JobEnvelope(
            id: "01a20155-18c1-781a-a7bd-20396c8912bd", kind: "backup", version: 2, payload: .object(["database": .string("main")]),
            queue: "nightly", priority: 7, maxAttempts: 3, timeoutSeconds: 60, enqueuedAt: Date(timeIntervalSince1970: 1_700_000_000),
            runAt: nil, uniqueKey: "backup:main", enqueuedBy: "ops@db1", traceparent: nil)
        #expect(envelope.encoded() == #"{"enqueuedAt":1700000000000,"enqueuedBy":"ops@db1","id":"01a20155-18c1-781a-a7bd-20396c8912bd","kind":"backup","maxAttempts":3,"payload":{"database":"main"},"priority":7,"queue":"nightly","timeoutSeconds":60,"uniqueKey":"backup:main","version":2}"#)
        let decoded = try JobEnvelope.decoder.decode(JobEnvelope.self, from: Data(envelope.encoded().utf8))
        #expect(decoded == envelope)
    }

    @Test("what a producer controls is checked", arguments: [
        ("bad queue!", "backup", 5, 3, "queue name"), ("q", "", 5, 3, "job kind"), ("q", "Backup.Nightly", 10, 3, "priority"),
        ("q", "x", -1, 3, "priority"), ("q", "x", 5, 0, "max attempts"), (String(repeating: "q", count: 65), "x", 5, 3, "queue name"),
    ])
    func validation(queue: String, kind: String, priority: Int, attempts: Int, fragment: String) {
        let envelope = JobEnvelope(kind: kind, version: 1, payload: .null, queue: queue, priority: priority, maxAttempts: attempts)
        do {
            try envelope.validate()
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains(fragment))
        }
    }

    @Test("queue lists with weights", arguments: [
        ("default", ["default:1"]), ("a:3,b:1", ["a:3", "b:1"]), ("critical:10,default", ["critical:10", "default:1"]),
    ])
    func queues(text: String, expected: [String]) throws {
        #expect(try WorkerConfiguration.parseQueues(text).map { "\($0.name):\($0.weight)" } == expected)
    }

    @Test("bad queue lists are named", arguments: ["", "a,,b", "a:0", "a:x", "a:1:2", "a,a", "bad name"])
    func badQueues(text: String) {
        #expect(throws: JobError.self) { try WorkerConfiguration.parseQueues(text) }
    }

    @Test("weighted fetch order: a queue of weight 3 comes first about three times as often")
    func weights() throws {
        let configuration = WorkerConfiguration(queues: try WorkerConfiguration.parseQueues("a:3,b:1"), workerID: "t")
        var generator = SplitMix64(seed: 11)
        var firstA = 0
        for _ in 0..<4000 where configuration.fetchOrder(using: &generator).first == "a" { firstA += 1 }
        #expect((2800...3200).contains(firstA))
    }
}

@Suite("Payload versions and shapes")
struct RegistryTests {
    struct Versioned: Job {
        struct Payload: Codable, Sendable { var database: String; var keep: Int }
        static let kind = "versioned"
        static let payloadVersion = 2
        static func upcast(_ payload: JSONValue, from version: Int) throws(JobError) -> JSONValue {
            guard version == 1, case .object(var fields) = payload else { throw JobError.permanent("cannot upgrade version \(version)") }
            fields["keep"] = .number(7)  // v1 had no keep: it meant a week
            return .object(fields)
        }
        func run(_ payload: Payload, context: JobContext) async throws -> JSONValue? { .string("\(payload.database):\(payload.keep)") }
    }

    var registry: JobRegistry {
        var r = JobRegistry.builtins
        r.register(Versioned())
        return r
    }

    func check(_ kind: String, _ version: Int, _ payload: String) -> String? {
        do {
            try registry.check(JobEnvelope(kind: kind, version: version, payload: try JSONValue(json: payload)))
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("current, upgraded and refused payloads")
    func versions() {
        #expect(check("versioned", 2, #"{"database":"main","keep":3}"#) == nil)
        #expect(check("versioned", 1, #"{"database":"main"}"#) == nil)
        #expect(check("versioned", 3, #"{"database":"main","keep":3}"#)?.contains("newer than this worker reads (2); upgrade the worker") == true)
        #expect(check("noop", 0, "{}")?.contains("older than this worker reads") == true)
        #expect(check("missing", 1, "{}")?.contains("unknown job kind 'missing'") == true)
    }

    @Test("a payload of the wrong shape names the field", arguments: [
        (#"{"keep":3}"#, "missing field 'database'"),
        (#"{"database":5,"keep":3}"#, "'database' should be String"),
        (#"{"database":"main","keep":"x"}"#, "'keep' should be Int"),
        (#"[1,2]"#, "the payload"),
    ])
    func shapes(payload: String, fragment: String) {
        let message = check("versioned", 2, payload)
        #expect(message?.contains(fragment) == true, "\(message ?? "accepted")")
    }
}
