/// A job's failure, typed by whether another attempt may succeed.
public struct JobError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    /// Connection lost, S3 503, lock timeout: yes. Bad payload, unknown kind, validation: no.
    public var isRetryable: Bool

    public init(_ message: String, retryable: Bool) {
        self.message = message
        isRetryable = retryable
    }

    public static func retryable(_ message: String) -> JobError { JobError(message, retryable: true) }
    public static func permanent(_ message: String) -> JobError { JobError(message, retryable: false) }

    public var description: String { message }
}

/// Errors that know whether a retry may cure them (the clients' errors conform).
public protocol TransientError: Error {
    var isTransient: Bool { get }
}

extension JobError {
    /// Classifies any error thrown by a job: typed errors say for themselves; a
    /// `TransientError` by its flag; anything else is retried (a retry of a job that
    /// cannot succeed costs attempts; not retrying one that could loses work).
    public static func classify(_ error: any Error) -> JobError {
        if let error = error as? JobError { return error }
        if let error = error as? any TransientError { return JobError("\(error)", retryable: error.isTransient) }
        if error is DecodingError { return .permanent("\(error)") }
        return .retryable("\(error)")
    }
}
