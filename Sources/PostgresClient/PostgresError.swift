/// An error of the PostgreSQL client. `description` is safe to log: passwords are
/// scrubbed from every message before it is stored here.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is; opaque so new kinds can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable { case invalidConnectionString, connection, server, cancelled, protocolViolation, invalidIdentifier, closed }
        fileprivate let base: Base
        public static let invalidConnectionString = Code(base: .invalidConnectionString)
        /// Could not connect, or the connection broke.
        public static let connection = Code(base: .connection)
        /// The server refused the statement; `sqlState` says why.
        public static let server = Code(base: .server)
        /// The statement was cancelled (by `cancel()` or task cancellation).
        public static let cancelled = Code(base: .cancelled)
        public static let protocolViolation = Code(base: .protocolViolation)
        /// A name cannot be used as an SQL identifier.
        public static let invalidIdentifier = Code(base: .invalidIdentifier)
        public static let closed = Code(base: .closed)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// The five-character SQLSTATE, for server errors (`42P01` undefined table, …).
    public var sqlState: String?
    public var detail: String?
    public var hint: String?
    /// `host:port` (or socket) of the server, when known.
    public var endpoint: String?

    public init(code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil, endpoint: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.endpoint = endpoint
    }

    /// True for failures a retry may cure: lost connections, serialization failures,
    /// deadlocks, lock timeouts, a server shutting down or out of connections.
    public var isTransient: Bool {
        if code == .connection { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") || sqlState.hasPrefix("53")
            || ["40001", "40P01", "55P03"].contains(sqlState)
    }

    public var description: String {
        switch code {
        case .server:
            var text = "PostgreSQL error \(sqlState ?? "?"): \(message)"
            if let detail { text += " (\(detail))" }
            if let hint { text += "; hint: \(hint)" }
            return text
        case .connection:
            return "PostgreSQL at \(endpoint ?? "?"): \(message)"
        case .invalidConnectionString:
            return "invalid PostgreSQL connection string: \(message)"
        default:
            return message
        }
    }

    public var debugDescription: String {
        "PostgresError(code: \(code), sqlState: \(sqlState ?? "-"), message: \(message), detail: \(detail ?? "-"), hint: \(hint ?? "-"), endpoint: \(endpoint ?? "-"))"
    }
}
