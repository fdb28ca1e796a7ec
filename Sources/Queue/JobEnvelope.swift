import Foundation

/// What travels through the queue for one job. Its JSON shape is stable: any program
/// that writes it can enqueue dbq jobs.
public struct JobEnvelope: Codable, Sendable, Equatable {
    /// Time-ordered id (UUIDv7), or derived from a schedule slot.
    public var id: String
    /// The job kind: a stable string such as `backup`, never a Swift type name.
    public var kind: String
    /// The version of the payload's shape.
    public var version: Int
    public var payload: JSONValue
    public var queue: String
    /// 0 (least urgent) to 9 (most urgent); higher runs first.
    public var priority: Int
    public var maxAttempts: Int
    /// Seconds one attempt may run before it is cancelled.
    public var timeoutSeconds: Double
    public var enqueuedAt: Date
    /// When the job may first run; nil means at once.
    public var runAt: Date?
    /// While a job with this key is queued or running, another push with it is merged into it.
    public var uniqueKey: String?
    /// `user@host` of whoever pushed it.
    public var enqueuedBy: String
    /// W3C `traceparent` of the pushing span, if any.
    public var traceparent: String?

    public init(
        id: String = JobID.make(), kind: String, version: Int, payload: JSONValue, queue: String = "default",
        priority: Int = 5, maxAttempts: Int = 5, timeoutSeconds: Double = 3600, enqueuedAt: Date = Date(),
        runAt: Date? = nil, uniqueKey: String? = nil, enqueuedBy: String = JobEnvelope.currentUser, traceparent: String? = nil
    ) {
        self.id = id
        self.kind = kind
        self.version = version
        self.payload = payload
        self.queue = queue
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.enqueuedAt = enqueuedAt
        self.runAt = runAt
        self.uniqueKey = uniqueKey
        self.enqueuedBy = enqueuedBy
        self.traceparent = traceparent
    }

    public static let priorities = 0...9

    /// `user@host` of this process, read once (Foundation's host name may ask the
    /// resolver, which a bulk push paid for every job).
    public static let currentUser: String = {
        let user = ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "unknown"
        return "\(user)@\(ProcessInfo.processInfo.hostName)"
    }()

    /// Checks what a producer controls; each problem named.
    public func validate() throws(JobError) {
        if !QueueName.isValid(queue) {
            throw JobError.permanent("queue name '\(queue)' is not valid: 1 to 64 letters, digits, '-', '_' or '.'")
        }
        if kind.isEmpty || kind.count > 64 || !kind.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) {
            throw JobError.permanent("job kind '\(kind)' is not valid: 1 to 64 letters, digits, '-', '_' or '.'")
        }
        if !Self.priorities.contains(priority) { throw JobError.permanent("priority \(priority) is outside 0…9") }
        if maxAttempts < 1 || maxAttempts > 1000 { throw JobError.permanent("max attempts \(maxAttempts) is outside 1…1000") }
        if !(timeoutSeconds > 0) { throw JobError.permanent("timeout must be positive") }
        if let uniqueKey, uniqueKey.isEmpty || uniqueKey.count > 200 { throw JobError.permanent("unique key must be 1 to 200 characters") }
    }

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .millisecondsSince1970
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .millisecondsSince1970
        return d
    }()

}

/// Queue names: the part inside `dbq:{…}`.
public enum QueueName {
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}
