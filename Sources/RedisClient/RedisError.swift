/// An error of the Redis client. `description` is safe to log: it never holds a password.
public struct RedisError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is; opaque so new kinds can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable { case invalidURL, connection, timeout, server, protocolViolation, closed }
        fileprivate let base: Base
        public static let invalidURL = Code(base: .invalidURL)
        /// Could not connect, or the connection broke.
        public static let connection = Code(base: .connection)
        /// The server did not answer within the command timeout.
        public static let timeout = Code(base: .timeout)
        /// The server answered with an error reply (`-ERR …`).
        public static let server = Code(base: .server)
        public static let protocolViolation = Code(base: .protocolViolation)
        /// The connection was closed by its owner.
        public static let closed = Code(base: .closed)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What went wrong, in words.
    public var message: String
    /// `host:port` of the server, when known.
    public var endpoint: String?
    /// The command's name (never its arguments, which may be secrets or payloads).
    public var command: String?
    /// False when the command certainly never reached the server (the connection could
    /// not be made): it may be sent again elsewhere without running twice.
    public var mayHaveRun: Bool

    public init(code: Code, message: String, endpoint: String? = nil, command: String? = nil, mayHaveRun: Bool = true) {
        self.code = code
        self.message = message
        self.endpoint = endpoint
        self.command = command
        self.mayHaveRun = mayHaveRun
    }

    /// True for failures a retry on a fresh connection may cure.
    public var isTransient: Bool { code == .connection || code == .timeout }

    public var description: String {
        switch code {
        case .invalidURL:
            return "invalid Redis URL: \(message)"
        case .server:
            return "Redis \(command.map { "\($0) " } ?? "")failed: \(message)"
        case .timeout:
            return "Redis at \(endpoint ?? "?") did not answer \(command ?? "the command") in time: \(message)"
        default:
            return "Redis at \(endpoint ?? "?"): \(message)"
        }
    }

    public var debugDescription: String {
        "RedisError(code: \(code), message: \(message), endpoint: \(endpoint ?? "-"), command: \(command ?? "-"))"
    }
}
