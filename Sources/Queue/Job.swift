import Logging

/// What names and describes a kind of job: a stable name, a Codable payload with a
/// version, its defaults, its lock class and its own metrics. `Job` adds the work;
/// database jobs (in DatabaseJobs) add it with an environment.
public protocol JobKind: Sendable {
    associatedtype Payload: Codable & Sendable

    /// The stable name jobs of this kind carry in the queue (`backup`, `noop`).
    static var kind: String { get }
    /// The payload shape this code writes and reads.
    static var payloadVersion: Int { get }
    static var defaultMaxAttempts: Int { get }
    static var defaultTimeout: Duration { get }

    /// Turns a payload of an older version into the current shape, or refuses it.
    static func upcast(_ payload: JSONValue, from version: Int) throws(JobError) -> JSONValue

    /// How jobs of this kind hold the database they name (nil: they hold none). The queue
    /// learns it from the registration; it names no kind itself.
    static var lockClass: DatabaseLockClass? { get }

    /// Metrics of this kind's own, from a successful job's result (a backup's size, a
    /// verification's time); called by the worker once per success.
    static func recordMetrics(result: JSONValue)
}

/// A kind of job with its work.
public protocol Job: JobKind {
    func run(_ payload: Payload, context: JobContext) async throws -> JSONValue?
}

extension JobKind {
    public static var payloadVersion: Int { 1 }
    public static var defaultMaxAttempts: Int { 5 }
    public static var defaultTimeout: Duration { .seconds(3600) }
    public static var lockClass: DatabaseLockClass? { nil }
    public static func recordMetrics(result: JSONValue) {}

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
    private let baseLogger: Logger
    private let metadata: Logger.Metadata
    let reportProgress: @Sendable (JobProgress) async -> Void
    let checkLease: @Sendable () async throws -> Void

    /// The job's logger, its id, queue and kind in its metadata. Made when asked for: a
    /// log handler may format its metadata on every change, and most jobs never log.
    public var logger: Logger {
        guard !metadata.isEmpty else { return baseLogger }
        var logger = baseLogger
        logger.handler.metadata.merge(metadata) { $1 }
        return logger
    }

    public init(id: String, kind: String, queue: String, attempt: Int, fencingToken: Int64 = 0, logger: Logger,
                metadata: Logger.Metadata = [:],
                confirmLease: @escaping @Sendable () async throws -> Void = {},
                reportProgress: @escaping @Sendable (JobProgress) async -> Void) {
        self.id = id
        self.kind = kind
        self.queue = queue
        self.attempt = attempt
        self.fencingToken = fencingToken
        baseLogger = logger
        self.metadata = metadata
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
    typealias Runner = @Sendable (any Sendable, JobContext) async throws -> JSONValue?
    /// Decodes a kind's payload (of the envelope's version) from the envelope's decoder.
    /// Throws `JobError` only.
    typealias PayloadDecoder = @Sendable (_ version: Int, _ decoder: any Decoder) throws -> any Sendable
    private var runners: [String: Runner] = [:]
    private var payloadDecoders: [String: PayloadDecoder] = [:]
    /// Decodes a kind's payload (of the envelope's version) from its own bytes.
    typealias PayloadBytesDecoder = @Sendable (_ version: Int, _ bytes: Data, _ decoder: JSONDecoder) throws -> any Sendable
    private var payloadBytesDecoders: [String: PayloadBytesDecoder] = [:]
    private var checkers: [String: @Sendable (JobEnvelope) throws -> Void] = [:]
    private var defaults: [String: (maxAttempts: Int, timeout: Duration, version: Int)] = [:]
    private var lockClasses: [String: DatabaseLockClass] = [:]
    private var metricsHooks: [String: @Sendable (JSONValue) -> Void] = [:]

    public init() {}

    public mutating func register<J: Job>(_ job: J) {
        runners[J.kind] = { payload, context in
            guard let payload = payload as? J.Payload else { throw JobError.permanent("payload of kind '\(J.kind)' was decoded as another type") }
            return try await job.run(payload, context: context)
        }
        payloadBytesDecoders[J.kind] = { version, bytes, decoder in
            if version == J.payloadVersion {
                do {
                    return try decoder.decode(J.Payload.self, from: bytes)
                } catch {
                    throw JobError.permanent("payload of kind '\(J.kind)' version \(version) does not decode: \(Self.describe(error))")
                }
            }
            let value: JSONValue
            do { value = try decoder.decode(JSONValue.self, from: bytes) } catch {
                throw JobError.permanent("envelope of kind '\(J.kind)' does not decode: \(Self.describe(error))")
            }
            return try Self.decode(J.self, version: version, payload: value)
        }
        payloadDecoders[J.kind] = { version, decoder in
            if version == J.payloadVersion {
                do {
                    return try J.Payload(from: decoder)
                } catch {
                    throw JobError.permanent("payload of kind '\(J.kind)' version \(version) does not decode: \(Self.describe(error, dropping: "payload"))")
                }
            }
            let value: JSONValue
            do { value = try JSONValue(from: decoder) } catch {
                throw JobError.permanent("envelope of kind '\(J.kind)' does not decode: \(Self.describe(error))")
            }
            return try Self.decode(J.self, version: version, payload: value)
        }
        defaults[J.kind] = (J.defaultMaxAttempts, J.defaultTimeout, J.payloadVersion)
        lockClasses[J.kind] = J.lockClass
        metricsHooks[J.kind] = { J.recordMetrics(result: $0) }
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

    /// The lock class a registered kind declared (nil: it holds no database, or is unknown).
    public func lockClass(of kind: String) -> DatabaseLockClass? { lockClasses[kind] }

    /// Hands a successful job's result to its kind's own metrics.
    func recordMetrics(kind: String, result: JSONValue) { metricsHooks[kind]?(result) }

    /// Runs the job the envelope names. Unknown kinds, newer or un-upgradable versions
    /// and payloads of the wrong shape fail as permanent errors that say what was wrong.
    func run(_ job: DecodedJob, context: JobContext) async throws -> JSONValue? {
        let header = job.header
        guard let runner = runners[header.kind], let payload = job.payload else {
            throw JobError.permanent("unknown job kind '\(header.kind)' (payload version \(header.version)); this worker runs: \(kinds.joined(separator: ", "))")
        }
        return try await runner(try payload.get(), context)
    }

    func payloadDecoder(for kind: String) -> PayloadDecoder? { payloadDecoders[kind] }

    /// The envelope's header and its kind's typed payload: read by `EnvelopeScanner` when
    /// it can, else by `decoder` (which also words the errors).
    func decodeEnvelope(_ text: String, decoder: JSONDecoder) throws -> DecodedJob {
        var text = text
        let fast = text.withUTF8 { utf8 -> DecodedJob? in
            let raw = UnsafeRawBufferPointer(utf8)
            guard let f = EnvelopeScanner.scan(raw) else { return nil }
            let header = f.header
            guard let decode = payloadBytesDecoders[header.kind] else { return DecodedJob(header: header, payload: nil) }
            do {
                return DecodedJob(header: header, payload: .success(try decode(header.version, Data(UnsafeRawBufferPointer(rebasing: raw[f.payload])), decoder)))
            } catch let error as JobError {
                return DecodedJob(header: header, payload: .failure(error))
            } catch {
                return DecodedJob(header: header, payload: .failure(.permanent("\(error)")))
            }
        }
        if let fast { return fast }
        return try decoder.decode(DecodedJob.self, from: Data(text.utf8))
    }

    /// A decoder of envelopes for this registry: the header and the kind's typed payload
    /// in one pass over the JSON.
    public func envelopeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = JobEnvelope.decoder.dateDecodingStrategy
        decoder.userInfo[DecodedJob.registryKey] = RegistryBox(self)
        return decoder
    }

    /// The hot path: the payload decoded straight from the envelope's bytes into the
    /// kind's type; only an older version goes through JSONValue to be upcast.
    static func decode<J: Job>(_ type: J.Type, _ envelope: JobEnvelope) throws(JobError) -> J.Payload {
        try decode(J.self, version: envelope.version, payload: envelope.payload)
    }

    static func decode<J: Job>(_ type: J.Type, version: Int, payload: JSONValue) throws(JobError) -> J.Payload {
        var payload = payload
        if version > J.payloadVersion {
            throw JobError.permanent("payload version \(version) of kind '\(J.kind)' is newer than this worker reads (\(J.payloadVersion)); upgrade the worker")
        }
        if version < J.payloadVersion {
            payload = try J.upcast(payload, from: version)
        }
        do {
            return try payload.decode(J.Payload.self)
        } catch {
            throw JobError.permanent("payload of kind '\(J.kind)' version \(version) does not decode: \(Self.describe(error))")
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

/// An envelope as a worker reads it: the header, and the payload decoded as its kind's
/// type in the same pass (nil for a kind the registry does not know).
struct DecodedJob: Decodable, Sendable {
    static let registryKey = CodingUserInfoKey(rawValue: "dbq.registry")!
    var header: EnvelopeHeader
    var payload: Result<any Sendable, JobError>?

    private enum Key: String, CodingKey { case payload }

    init(header: EnvelopeHeader, payload: Result<any Sendable, JobError>?) {
        self.header = header
        self.payload = payload
    }

    init(from decoder: any Decoder) throws {
        header = try EnvelopeHeader(from: decoder)
        guard let registry = (decoder.userInfo[Self.registryKey] as? RegistryBox)?.registry,
              let decodePayload = registry.payloadDecoder(for: header.kind) else {
            payload = nil
            return
        }
        let container = try decoder.container(keyedBy: Key.self)
        let version = header.version
        do {
            let nested = try container.superDecoder(forKey: .payload)
            do {
                payload = .success(try decodePayload(version, nested))
            } catch let error as JobError {
                payload = .failure(error)
            }
        } catch {
            payload = .failure(JobError.permanent("payload of kind '\(header.kind)' version \(version) does not decode: \(JobRegistry.describe(error, dropping: "payload"))"))
        }
    }
}

/// The registry in a decoder's `userInfo` (which holds `any Sendable`).
final class RegistryBox: Sendable {
    let registry: JobRegistry
    init(_ registry: JobRegistry) { self.registry = registry }
}

import Foundation
