import Logging

/// A kind of job: a stable name, a Codable payload with a version, and the work.
public protocol Job: Sendable {
    associatedtype Payload: Codable & Sendable

    /// The stable name jobs of this kind carry in the queue (`backup`, `noop`).
    static var kind: String { get }
    /// The payload shape this code writes and reads.
    static var payloadVersion: Int { get }
    static var defaultMaxAttempts: Int { get }
    static var defaultTimeout: Duration { get }

    /// Turns a payload of an older version into the current shape, or refuses it.
    static func upcast(_ payload: JSONValue, from version: Int) throws(JobError) -> JSONValue

    func run(_ payload: Payload, context: JobContext) async throws -> JSONValue?
}

extension Job {
    public static var payloadVersion: Int { 1 }
    public static var defaultMaxAttempts: Int { 5 }
    public static var defaultTimeout: Duration { .seconds(3600) }

    public static func upcast(_ payload: JSONValue, from version: Int) throws(JobError) -> JSONValue {
        throw JobError.permanent("payload version \(version) of kind '\(kind)' is older than this worker reads (\(payloadVersion)) and has no upgrade")
    }
}

/// What a running job can see and do besides its payload.
public struct JobContext: Sendable {
    public let id: String
    public let kind: String
    public let queue: String
    /// 1 for the first attempt.
    public let attempt: Int
    /// The lease's fencing token: it grows with every lease of the job, so an artefact
    /// records which attempt wrote it.
    public let fencingToken: Int64
    public let logger: Logger
    let reportProgress: @Sendable (JobProgress) async -> Void
    let checkLease: @Sendable () async throws -> Void

    public init(id: String, kind: String, queue: String, attempt: Int, fencingToken: Int64 = 0, logger: Logger,
                confirmLease: @escaping @Sendable () async throws -> Void = {},
                reportProgress: @escaping @Sendable (JobProgress) async -> Void) {
        self.id = id
        self.kind = kind
        self.queue = queue
        self.attempt = attempt
        self.fencingToken = fencingToken
        self.logger = logger
        self.checkLease = confirmLease
        self.reportProgress = reportProgress
    }

    /// Renews the lease now and throws `LeaseLostError` if this attempt no longer holds
    /// it: called right before a commit (a manifest), so that a worker that was paused
    /// past its lease never commits over the attempt that replaced it.
    public func confirmLease() async throws {
        try Task.checkCancellation()
        try await checkLease()
    }

    /// Stores progress with the job (throttled by the worker).
    public func progress(_ progress: JobProgress) async {
        await reportProgress(progress)
    }
}

/// This attempt lost its lease (another worker owns the job now): commit nothing.
public struct LeaseLostError: Error, Sendable, CustomStringConvertible {
    public var jobID: String
    public init(jobID: String) { self.jobID = jobID }
    public var description: String { "lease of job \(jobID) was lost; another worker owns it now, so this attempt commits nothing" }
}

/// The job kinds a worker can run, by name.
public struct JobRegistry: Sendable {
    typealias Runner = @Sendable (EnvelopeHeader, [UInt8], JobContext) async throws -> JSONValue?
    private var runners: [String: Runner] = [:]
    private var checkers: [String: @Sendable (JobEnvelope) throws -> Void] = [:]
    private var defaults: [String: (maxAttempts: Int, timeout: Duration, version: Int)] = [:]

    public init() {}

    public mutating func register<J: Job>(_ job: J) {
        runners[J.kind] = { header, bytes, context in
            let payload = try Self.decode(J.self, header: header, bytes: bytes)
            return try await job.run(payload, context: context)
        }
        defaults[J.kind] = (J.defaultMaxAttempts, J.defaultTimeout, J.payloadVersion)
        checkers[J.kind] = { envelope in _ = try Self.decode(J.self, envelope) }
    }

    /// Checks, before a push, that the kind exists and the payload decodes as the worker
    /// will decode it: a payload of the wrong shape is refused at the door.
    public func check(_ envelope: JobEnvelope) throws(JobError) {
        guard let checker = checkers[envelope.kind] else {
            throw JobError.permanent("unknown job kind '\(envelope.kind)'; known kinds: \(kinds.joined(separator: ", "))")
        }
        do {
            try checker(envelope)
        } catch {
            throw JobError.classify(error)
        }
    }

    public var kinds: [String] { runners.keys.sorted() }

    public func defaults(for kind: String) -> (maxAttempts: Int, timeout: Duration, version: Int)? { defaults[kind] }

    /// Runs the job the envelope names. Unknown kinds, newer or un-upgradable versions
    /// and payloads of the wrong shape fail as permanent errors that say what was wrong.
    func run(_ header: EnvelopeHeader, bytes: [UInt8], context: JobContext) async throws -> JSONValue? {
        guard let runner = runners[header.kind] else {
            throw JobError.permanent("unknown job kind '\(header.kind)' (payload version \(header.version)); this worker runs: \(kinds.joined(separator: ", "))")
        }
        return try await runner(header, bytes, context)
    }

    /// The hot path: the payload decoded straight from the envelope's bytes into the
    /// kind's type; only an older version goes through JSONValue to be upcast.
    static func decode<J: Job>(_ type: J.Type, header: EnvelopeHeader, bytes: [UInt8]) throws(JobError) -> J.Payload {
        if header.version == J.payloadVersion {
            do {
                return try JobEnvelope.decoder.decode(PayloadBox<J.Payload>.self, from: Data(bytes)).payload
            } catch {
                throw JobError.permanent("payload of kind '\(J.kind)' version \(header.version) does not decode: \(Self.describe(error, dropping: "payload"))")
            }
        }
        let envelope: JobEnvelope
        do {
            envelope = try JobEnvelope.decoder.decode(JobEnvelope.self, from: Data(bytes))
        } catch {
            throw JobError.permanent("envelope of kind '\(J.kind)' does not decode: \(Self.describe(error))")
        }
        return try decode(J.self, envelope)
    }

    static func decode<J: Job>(_ type: J.Type, _ envelope: JobEnvelope) throws(JobError) -> J.Payload {
        var payload = envelope.payload
        if envelope.version > J.payloadVersion {
            throw JobError.permanent("payload version \(envelope.version) of kind '\(J.kind)' is newer than this worker reads (\(J.payloadVersion)); upgrade the worker")
        }
        if envelope.version < J.payloadVersion {
            payload = try J.upcast(payload, from: envelope.version)
        }
        do {
            return try payload.decode(J.Payload.self)
        } catch {
            throw JobError.permanent("payload of kind '\(J.kind)' version \(envelope.version) does not decode: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error, dropping prefix: String? = nil) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            var keys = context.codingPath
            if let prefix, keys.first?.stringValue == prefix { keys.removeFirst() }
            let p = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the payload" : "'\(p)'"
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "missing field '\(key.stringValue)'" + (parent == "the payload" ? "" : " in \(parent)")
        case .typeMismatch(let type, let context): return "\(path(context)) should be \(type)"
        case .valueNotFound(let type, let context): return "\(path(context)) is null, expected \(type)"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// The fields of an envelope a worker needs before it knows the payload's type.
struct EnvelopeHeader: Decodable, Sendable {
    var id: String
    var kind: String
    var version: Int
    var queue: String
    var maxAttempts: Int
    var timeoutSeconds: Double
}

private struct PayloadBox<P: Decodable>: Decodable {
    var payload: P
}

import Foundation
