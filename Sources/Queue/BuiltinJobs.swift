import Foundation

/// Does nothing: for benchmarks and for checking that a fleet takes work.
public struct NoopJob: Job {
    public struct Payload: Codable, Sendable {
        public init() {}
    }
    public static let kind = "noop"
    public init() {}
    public func run(_ payload: Payload, context: JobContext) async throws -> JSONValue? { nil }
}

/// Sleeps, reporting progress, and fails if asked: for trying a fleet by hand (kill a
/// worker mid-job, watch the rescue, watch retries).
public struct SleepJob: Job {
    public struct Payload: Codable, Sendable {
        public var seconds: Double
        /// Fail every attempt with this message (retryable unless `permanent`).
        public var fail: String?
        public var permanent: Bool?
        /// Fail only the first N attempts.
        public var failAttempts: Int?
        /// After sleeping, go on sleeping while this file exists (checked every 50 ms): a
        /// job that cannot end before a test or a person says so, whatever the machine's load.
        public var holdWhileExists: String?

        public init(seconds: Double, fail: String? = nil, permanent: Bool? = nil, failAttempts: Int? = nil, holdWhileExists: String? = nil) {
            self.seconds = seconds
            self.fail = fail
            self.permanent = permanent
            self.failAttempts = failAttempts
            self.holdWhileExists = holdWhileExists
        }
    }
    public static let kind = "sleep"
    public init() {}

    public func run(_ payload: Payload, context: JobContext) async throws -> JSONValue? {
        guard payload.seconds >= 0, payload.seconds <= 86_400 else {
            throw JobError.permanent("seconds must be from 0 to 86400, not \(payload.seconds)")
        }
        let steps = max(1, Int(payload.seconds * 4))
        for step in 1...steps {
            try await Task.sleep(for: .milliseconds(Int64(payload.seconds * 1000) / Int64(steps)))
            await context.progress(JobProgress(fraction: Double(step) / Double(steps), message: "slept \(step * 250) ms"))
        }
        if let hold = payload.holdWhileExists {
            while access(hold, F_OK) == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        if let message = payload.fail, context.attempt <= (payload.failAttempts ?? Int.max) {
            throw JobError(message, retryable: !(payload.permanent ?? false))
        }
        return try Result(slept: payload.seconds, attempt: context.attempt).json
    }

    /// How long it slept, and on which attempt it ended.
    public struct Result: JobResult {
        public var slept: Double
        public var attempt: Int
    }
}

extension JobRegistry {
    /// `noop` and `sleep`.
    public static var builtins: JobRegistry {
        var registry = JobRegistry()
        registry.register(NoopJob())
        registry.register(SleepJob())
        return registry
    }
}
