/// Where a job is in its life. Every move between states is one atomic step of the
/// queue driver, so a crash can leave a job in exactly one state, never two or none.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Waiting for its run time, or for its next retry.
    case scheduled
    /// Ready to be taken by a worker.
    case pending
    /// Leased by one worker.
    case running
    case succeeded
    /// Out of attempts, or failed in a way no retry can cure.
    case dead
    case cancelled

    public var isFinished: Bool { self == .succeeded || self == .dead || self == .cancelled }
}

/// A job leased to a worker: the fencing token proves the lease in every later call.
public struct Lease: Sendable, Hashable {
    public var id: String
    public var queue: String
    public var token: Int64

    public init(id: String, queue: String, token: Int64) {
        self.id = id
        self.queue = queue
        self.token = token
    }
}

/// A job as fetched by a worker.
public struct LeasedJob: Sendable {
    public var lease: Lease
    /// 1 for the first attempt.
    public var attempt: Int
    /// The envelope's JSON text; decoded by the worker so that a malformed one can be
    /// reported as the job's failure rather than the worker's.
    public var envelopeJSON: String

    public init(lease: Lease, attempt: Int, envelopeJSON: String) {
        self.lease = lease
        self.attempt = attempt
        self.envelopeJSON = envelopeJSON
    }
}

/// How an attempt ended.
public enum Outcome: Sendable, Equatable {
    case succeeded(result: JSONValue?)
    case retry(afterMilliseconds: Int64, error: String)
    case dead(error: String)
    /// Handed back unfinished (graceful shutdown): runs again at once, attempt not counted.
    case released
    case cancelled
}

/// JobProgress of a running job, shown by `dbq jobs show` and `dbq push --wait`.
public struct JobProgress: Sendable, Codable, Equatable {
    public var fraction: Double?
    public var bytes: Int64?
    public var rows: Int64?
    public var message: String?

    public init(fraction: Double? = nil, bytes: Int64? = nil, rows: Int64? = nil, message: String? = nil) {
        self.fraction = fraction
        self.bytes = bytes
        self.rows = rows
        self.message = message
    }
}

/// What a push did.
public enum PushResult: Sendable, Equatable {
    case queued(id: String)
    /// A job with the same unique key (or id) is queued or running: this push merged into it.
    case merged(existingID: String)

    public var id: String {
        switch self {
        case .queued(let id), .merged(let id): id
        }
    }
}

/// A job a worker finished, as `WorkerConfiguration.onFinished` is told of it.
public struct FinishedJob: Sendable {
    public var id: String
    public var queue: String
    public var kind: String
    public var outcome: Outcome
    /// The job's payload (nil when the envelope did not decode).
    public var payload: JSONValue?

    public init(id: String, queue: String, kind: String, outcome: Outcome, payload: JSONValue?) {
        self.id = id
        self.queue = queue
        self.kind = kind
        self.outcome = outcome
        self.payload = payload
    }
}
