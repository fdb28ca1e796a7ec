import CHiredis
import DBQSupport
import Logging

/// One connection to Redis over hiredis.
///
/// The hiredis context is owned by this object alone and freed in `deinit`. Every use of
/// it runs on the connection's own `BlockingLane`, so hiredis' blocking socket calls never
/// occupy Swift's cooperative pool and the context is confined to one thread at a time.
///
/// A broken connection (server gone, `CLIENT KILL`, timeout) fails the call that meets
/// it with an error naming `host:port`; the next call connects afresh, authenticates and
/// selects the database again. Calls are not retried behind the caller's back: a command
/// that may have run must not run twice unless the caller says so.
public final class RedisConnection: @unchecked Sendable {
    // @unchecked Sendable: `context` and `closed` are read and written only inside
    // `lane.run` closures, and the lane is serial; everything else is immutable.
    public let configuration: RedisConfiguration
    private let lane: BlockingLane
    private let logger: Logger
    private var context: UnsafeMutablePointer<redisContext>?
    private var closed = false
    private var connectCount = 0

    /// A connection that connects on its first command.
    public init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        lane = BlockingLane(label: "dbq.redis.\(configuration.endpoint)")
    }

    /// Connects now, so that a wrong address or password fails here rather than later.
    public static func connect(_ configuration: RedisConfiguration, logger: Logger) async throws -> RedisConnection {
        let connection = RedisConnection(configuration: configuration, logger: logger)
        try await connection.lane.run { _ = try connection.connected() }
        return connection
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Sends one command and returns its reply; an error reply is thrown as `.server`.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        let reply = try await lane.run { try self.execute(command) }
        if case .error(let message) = reply {
            throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: command.name)
        }
        return reply
    }

    @discardableResult
    public func send(_ name: RedisArgument, _ arguments: RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand([name] + arguments))
    }

    /// Sends every command, then reads every reply: one round trip for the lot. Error
    /// replies come back in place, as `.error`, so one failing command does not hide the
    /// others' results.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await lane.run { try self.executePipeline(commands) }
    }

    /// Sends a command that blocks on the server (`BLMOVE`, `BZPOPMIN`, …) for up to
    /// `timeout`; the socket timeout is widened for this one call so the wait is not
    /// mistaken for a dead server.
    @discardableResult
    public func blocking(_ command: RedisCommand, timeout: Duration) async throws -> RedisValue {
        let reply = try await blockingReply(command, timeout: timeout)
        if case .error(let message) = reply {
            throw RedisError(code: .server, message: message, endpoint: configuration.endpoint, command: command.name)
        }
        return reply
    }

    /// `blocking`, with an error reply returned rather than thrown (for routers that read
    /// redirects).
    public func blockingReply(_ command: RedisCommand, timeout: Duration) async throws -> RedisValue {
        try await lane.run { () throws -> RedisValue in
            let context = try self.connected()
            let widened = (timeout + self.configuration.commandTimeout).milliseconds
            redisSetTimeout(context, CHiredis_timeval(widened))
            defer {
                if self.context == context {
                    redisSetTimeout(context, CHiredis_timeval(self.configuration.commandTimeout.milliseconds))
                }
            }
            return try self.execute(command)
        }
    }

    /// Closes the connection; later calls fail with `.closed`.
    public func close() async {
        await lane.run {
            self.closed = true
            if let context = self.context {
                redisFree(context)
                self.context = nil
            }
        }
    }

    /// How many times this connection has (re)connected: 1 after the first command.
    public var connections: Int {
        get async { await lane.run { self.connectCount } }
    }

    // MARK: - On the lane

    private func connected() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if closed {
            throw RedisError(code: .closed, message: "connection is closed", endpoint: configuration.endpoint)
        }
        if let context {
            if CHiredis_err(context) == 0 { return context }
            redisFree(context)
            self.context = nil
            logger.info("reconnecting to Redis", metadata: ["redis.endpoint": "\(configuration.endpoint)"])
        }
        let timeout = CHiredis_timeval(configuration.connectTimeout.milliseconds)
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port), timeout) else {
            throw RedisError(code: .connection, message: "cannot allocate a connection", endpoint: configuration.endpoint, mayHaveRun: false)
        }
        if CHiredis_err(context) != 0 {
            let reason = String(cString: CHiredis_errstr(context))
            redisFree(context)
            throw RedisError(
                code: .connection,
                message: "cannot connect: \(reason) (is Redis running and reachable at \(configuration.endpoint)?)",
                endpoint: configuration.endpoint, mayHaveRun: false)
        }
        redisSetTimeout(context, CHiredis_timeval(configuration.commandTimeout.milliseconds))
        self.context = context
        do {
            try handshake()
        } catch {
            redisFree(context)
            self.context = nil
            // The caller's command was never sent.
            var refused = error
            refused.mayHaveRun = false
            throw refused
        }
        connectCount += 1
        logger.debug("connected to Redis", metadata: ["redis.endpoint": "\(configuration.endpoint)"])
        return context
    }

    private func handshake() throws(RedisError) {
        if let password = configuration.password {
            var auth: [RedisArgument] = ["AUTH"]
            if let username = configuration.username { auth.append(RedisArgument(username)) }
            auth.append(RedisArgument(password))
            if case .error(let message) = try rawExecute(RedisCommand(auth)) {
                throw RedisError(
                    code: .connection,
                    message: "authentication refused: \(message) (check the password in the Redis URL)",
                    endpoint: configuration.endpoint, command: "AUTH")
            }
        }
        if configuration.database != 0 {
            if case .error(let message) = try rawExecute(RedisCommand("SELECT", RedisArgument(configuration.database))) {
                throw RedisError(
                    code: .connection, message: "cannot select database \(configuration.database): \(message)",
                    endpoint: configuration.endpoint, command: "SELECT")
            }
        }
    }

    private func execute(_ command: RedisCommand) throws(RedisError) -> RedisValue {
        _ = try connected()
        return try rawExecute(command)
    }

    private func rawExecute(_ command: RedisCommand) throws(RedisError) -> RedisValue {
        guard let context else { throw RedisError(code: .connection, message: "not connected", endpoint: configuration.endpoint) }
        let reply = command.withArgv { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let reply else { throw ioError(context, command: command.name) }
        defer { freeReplyObject(reply) }
        return RedisValue(reply.assumingMemoryBound(to: redisReply.self))
    }

    private func executePipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisValue] {
        let context = try connected()
        for command in commands {
            let status = command.withArgv { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            if status != REDIS_OK { throw ioError(context, command: command.name) }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for command in commands {
            var reply: UnsafeMutableRawPointer?
            if redisGetReply(context, &reply) != REDIS_OK || reply == nil {
                throw ioError(context, command: command.name)
            }
            replies.append(RedisValue(reply!.assumingMemoryBound(to: redisReply.self)))
            freeReplyObject(reply)
        }
        return replies
    }

    private func ioError(_ context: UnsafeMutablePointer<redisContext>, command: String) -> RedisError {
        let code = CHiredis_err(context)
        let reason = String(cString: CHiredis_errstr(context))
        if code == REDIS_ERR_IO && reason.localizedCaseInsensitiveContains("temporarily unavailable") {
            return RedisError(
                code: .timeout, message: "no reply within \(configuration.commandTimeout)",
                endpoint: configuration.endpoint, command: command)
        }
        let what = code == REDIS_ERR_EOF ? "connection closed by the server" : reason
        return RedisError(code: .connection, message: "connection lost during \(command): \(what)", endpoint: configuration.endpoint, command: command)
    }
}

extension RedisCommand {
    /// Calls `body` with argc, argv and argvlen pointing into one flat buffer that lives
    /// for the duration of the call (hiredis copies what it needs).
    fileprivate func withArgv<R>(
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let total = arguments.reduce(0) { $0 + $1.bytes.count }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 1)
        defer { storage.deallocate() }
        let argv = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: arguments.count)
        defer { argv.deallocate() }
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: arguments.count)
        defer { lengths.deallocate() }
        var offset = 0
        for (i, argument) in arguments.enumerated() {
            let start = storage + offset
            argument.bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress, raw.count > 0 { start.copyMemory(from: base, byteCount: raw.count) }
            }
            argv[i] = UnsafePointer(start.assumingMemoryBound(to: CChar.self))
            lengths[i] = argument.bytes.count
            offset += argument.bytes.count
        }
        return body(Int32(arguments.count), argv, lengths)
    }
}

extension RedisValue {
    /// Copies a hiredis reply tree into Swift values.
    init(_ reply: UnsafeMutablePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: UnsafeRawBufferPointer(start: r.str, count: r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: UnsafeRawBufferPointer(start: r.str, count: r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int(r.integer))
        case REDIS_REPLY_STRING:
            self = .bulk(r.len == 0 ? [] : Array(UnsafeRawBufferPointer(start: r.str, count: r.len)))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] { elements.append(RedisValue(element)) } else { elements.append(.null) }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }
}
