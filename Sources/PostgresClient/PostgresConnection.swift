import CLibpq
import DBQSupport
import Logging
import Synchronization

/// One connection to PostgreSQL over libpq.
///
/// The `PGconn` is owned by this object alone and freed in `deinit`. Every use of it runs
/// on the connection's own `BlockingLane`, off Swift's cooperative pool. Cancelling the
/// task that awaits a statement sends a cancel request to the server (`PQcancel`), so a
/// long `pg_sleep` or `COPY` stops within a round trip.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked Sendable: `handle`, `copyState`, `inTransaction` and `lostInTransaction`
    // are touched only inside `lane.run` closures (a serial lane). `cancelHandle` is behind a Mutex; libpq documents
    // `PQcancel` on a `PGcancel` as safe from any thread.
    public let connectionString: PostgresConnectionString
    let lane: BlockingLane
    let logger: Logger
    var handle: OpaquePointer?
    var copyState: CopyState = .idle
    /// Whether the session was inside a transaction block when last seen healthy.
    private var inTransaction = false
    /// Set when the connection broke inside a transaction: every later call fails.
    private var lostInTransaction = false
    private let cancelHandle = Mutex<CancelHandle?>(nil)
    /// `PQcancel` opens a connection to the server and waits: it runs here, never on the
    /// caller's thread (which may be one of Swift's cooperative pool).
    private let cancelLane = BlockingLane(label: "dbq.postgres.cancel")
    private let notices: NoticeSink

    enum CopyState { case idle, copyOut, copyIn }

    private init(connectionString: PostgresConnectionString, logger: Logger) {
        self.connectionString = connectionString
        self.logger = logger
        notices = NoticeSink(logger: logger)
        lane = BlockingLane(label: "dbq.postgres")
    }

    /// Connects to the server named by `url` (a libpq URL or keyword string).
    /// `connect_timeout` defaults to 10 s and `application_name` to `dbq` unless the
    /// string sets them.
    public static func connect(
        _ url: String, logger: Logger, applicationName: String = "dbq", connectTimeout: Int = 10
    ) async throws -> PostgresConnection {
        let parsed = try PostgresConnectionString(url)
        let connection = PostgresConnection(connectionString: parsed, logger: logger)
        try await connection.lane.run {
            try connection.open(applicationName: applicationName, connectTimeout: connectTimeout)
        }
        return connection
    }

    deinit {
        cancelHandle.withLock { handle in
            if let pointer = handle?.pointer { PQfreeCancel(pointer) }
            handle = nil
        }
        if let handle { PQfinish(handle) }
    }

    /// The server's version number (`150004` for 15.4).
    public var serverVersion: Int {
        get async { await lane.run { self.handle.map { Int(PQserverVersion($0)) } ?? 0 } }
    }

    /// Runs a statement with parameters (`$1`, `$2`, …) sent separately from the SQL text,
    /// and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresParameter] = []) async throws -> PostgresRows {
        try await cancellable { flag in
            try await self.lane.run {
                try flag.check()
                return try self.execParams(sql, parameters)
            }
        }
    }

    /// Runs one or more statements without parameters (simple query protocol): for DDL
    /// scripts, `CREATE DATABASE`, `VACUUM`.
    @discardableResult
    public func execute(_ sql: String) async throws -> PostgresRows {
        try await cancellable { flag in
            try await self.lane.run {
                try flag.check()
                return try self.exec(sql)
            }
        }
    }

    /// `PQescapeIdentifier`: the identifier quoted for this connection's encoding, after
    /// the checks of `PostgresIdentifier.validate`.
    public func quoteIdentifier(_ name: String) async throws -> String {
        try PostgresIdentifier.validate(name)
        return try await lane.run { () throws -> String in
            let conn = try self.live()
            guard let escaped = PQescapeIdentifier(conn, name, name.utf8.count) else {
                throw self.connectionError(conn, fallback: "cannot quote identifier")
            }
            defer { PQfreemem(escaped) }
            return String(cString: escaped)
        }
    }

    /// Asks the server to cancel whatever this connection is running. Safe from any task
    /// and thread: the request is sent from the connection's cancel lane, and this returns
    /// at once.
    public func cancel() {
        cancelLane.submit {
            self.cancelHandle.withLock { handle in
                guard let pointer = handle?.pointer else { return }
                var buffer = [CChar](repeating: 0, count: 256)
                if PQcancel(pointer, &buffer, Int32(buffer.count)) == 0 {
                    let reason = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    self.logger.info("cancel request failed", metadata: ["db.endpoint": "\(self.connectionString.endpoint)", "error": "\(reason)"])
                }
            }
        }
    }

    /// Closes the connection; later calls fail with `.closed`.
    public func close() async {
        await lane.run {
            self.cancelHandle.withLock { handle in
                if let pointer = handle?.pointer { PQfreeCancel(pointer) }
                handle = nil
            }
            if let handle = self.handle { PQfinish(handle) }
            self.handle = nil
        }
    }

    // MARK: - Plumbing

    /// Runs `body`, and sends a cancel request to the server if the task is cancelled.
    /// A task cancelled before its statement reaches the server does not send it at all
    /// (a cancel request then would find nothing to cancel).
    func cancellable<T: Sendable>(_ body: (CancelFlag) async throws -> T) async throws -> T {
        let flag = CancelFlag()
        do {
            if Task.isCancelled { throw CancellationError() }
            return try await withTaskCancellationHandler {
                try await body(flag)
            } onCancel: {
                flag.set()
                self.cancel()
            }
        } catch let error as PostgresError where error.sqlState == "57014" {
            throw PostgresError(code: .cancelled, message: "statement cancelled", sqlState: error.sqlState, endpoint: connectionString.endpoint)
        } catch is CancellationError {
            throw PostgresError(code: .cancelled, message: "statement cancelled before it was sent", endpoint: connectionString.endpoint)
        }
    }



    private func open(applicationName: String, connectTimeout: Int) throws(PostgresError) {
        // Defaults come first: expand_dbname lets the caller's string override them.
        let keywords = ["connect_timeout", "application_name", "dbname"]
        let values = [String(connectTimeout), applicationName, connectionString.raw]
        let conn = withCStrings(keywords) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let conn else {
            throw PostgresError(code: .connection, message: "libpq could not allocate a connection", endpoint: connectionString.endpoint)
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let error = connectionError(conn, fallback: "cannot connect")
            PQfinish(conn)
            throw error
        }
        PQsetNoticeProcessor(conn, noticeProcessor, Unmanaged.passUnretained(notices).toOpaque())
        handle = conn
        cancelHandle.withLock { $0 = PQgetCancel(conn).map(CancelHandle.init) }
    }

    /// The live handle, after recovering from an abandoned COPY or a broken connection.
    ///
    /// A connection that broke outside a transaction is reset once (if that fails, the
    /// error says so). One that broke inside a transaction is not: the server rolled the
    /// transaction back, and statements run on a fresh session would run outside it (an
    /// exported snapshot, a held lock, a half-done migration), so this call and every
    /// later one fail, as a connection error (retryable), until the connection is closed.
    func live() throws(PostgresError) -> OpaquePointer {
        guard let conn = handle else {
            throw PostgresError(code: .closed, message: "connection is closed", endpoint: connectionString.endpoint)
        }
        if lostInTransaction { throw lostInTransactionError }
        if copyState != .idle { abandonCopy(conn) }
        if PQstatus(conn) != CONNECTION_OK {
            if inTransaction {
                lostInTransaction = true
                throw lostInTransactionError
            }
            logger.info("reconnecting to PostgreSQL", metadata: ["db.endpoint": "\(connectionString.endpoint)"])
            PQreset(conn)
            guard PQstatus(conn) == CONNECTION_OK else { throw connectionError(conn, fallback: "connection lost") }
            cancelHandle.withLock { handle in
                if let pointer = handle?.pointer { PQfreeCancel(pointer) }
                handle = PQgetCancel(conn).map(CancelHandle.init)
            }
        }
        let status = PQtransactionStatus(conn)
        inTransaction = status == PQTRANS_INTRANS || status == PQTRANS_INERROR
        return conn
    }

    private var lostInTransactionError: PostgresError {
        PostgresError(code: .connection,
                      message: "the connection was lost inside a transaction; the server rolled it back, and nothing more runs on this connection (the operation must start again)",
                      endpoint: connectionString.endpoint)
    }

    private func execParams(_ sql: String, _ parameters: [PostgresParameter]) throws(PostgresError) -> PostgresRows {
        let conn = try live()
        let texts = parameters.map(\.text)
        let result = withOptionalCStrings(texts) { values in
            PQexecParams(conn, sql, Int32(texts.count), nil, values, nil, nil, 0)
        }
        return try consume(result, conn: conn)
    }

    private func exec(_ sql: String) throws(PostgresError) -> PostgresRows {
        let conn = try live()
        return try consume(PQexec(conn, sql), conn: conn)
    }

    /// Turns a result into rows or a typed error, and frees it.
    func consume(_ result: OpaquePointer?, conn: OpaquePointer) throws(PostgresError) -> PostgresRows {
        guard let result else { throw connectionError(conn, fallback: "no result from the server") }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.rows(of: result)
        case PGRES_COPY_OUT, PGRES_COPY_IN, PGRES_COPY_BOTH:
            throw PostgresError(code: .protocolViolation, message: "COPY must go through copyOut/copyIn", endpoint: connectionString.endpoint)
        default:
            throw serverError(result, conn: conn)
        }
    }

    static func rows(of result: OpaquePointer) -> PostgresRows {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [String] = []
        var index: [String: Int] = [:]
        for c in 0..<columnCount {
            let name = String(cString: PQfname(result, Int32(c)))
            columns.append(name)
            if index[name] == nil { index[name] = c }
        }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(r), Int32(c)))
                    let pointer = PQgetvalue(result, Int32(r), Int32(c))!
                    values.append(String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self))
                }
            }
            rows.append(PostgresRow(values: values, columnIndex: index))
        }
        let tag = String(cString: PQcmdStatus(result))
        let affected = Int(String(cString: PQcmdTuples(result)))
        return PostgresRows(columns: columns, rows: rows, affectedRows: affected, commandTag: tag)
    }

    func serverError(_ result: OpaquePointer, conn: OpaquePointer) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let sqlState = field(UInt8(ascii: "C"))
        let message = field(UInt8(ascii: "M")) ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        if sqlState == nil && PQstatus(conn) != CONNECTION_OK {
            return connectionError(conn, fallback: message)
        }
        return PostgresError(
            code: .server, message: scrub(message), sqlState: sqlState,
            detail: field(UInt8(ascii: "D")).map(scrub), hint: field(UInt8(ascii: "H")).map(scrub),
            endpoint: connectionString.endpoint)
    }

    func connectionError(_ conn: OpaquePointer, fallback: String) -> PostgresError {
        var message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
        if message.isEmpty { message = fallback }
        // libpq repeats "connection to server at … failed:" once per address tried; one is enough.
        message = message.replacingOccurrences(of: "\n", with: "; ")
        return PostgresError(code: .connection, message: scrub(message), endpoint: connectionString.endpoint)
    }

    func scrub(_ text: String) -> String {
        Redaction.scrub(text, secrets: [connectionString.password].compactMap { $0 })
    }
}

/// Whether one call's task was cancelled: checked on the lane just before the statement
/// is sent, so a statement whose task is already cancelled is never sent.
final class CancelFlag: Sendable {
    private let cancelled = Mutex(false)
    func set() { cancelled.withLock { $0 = true } }
    func check() throws { if cancelled.withLock({ $0 }) { throw CancellationError() } }
}

/// A `PGcancel` pointer; only used under the connection's mutex.
private struct CancelHandle: @unchecked Sendable {
    // @unchecked Sendable: the pointer is reached only inside `cancelHandle.withLock`.
    let pointer: OpaquePointer
}

/// Receives server notices (`NOTICE: table "x" does not exist, skipping`) for the logger.
private final class NoticeSink: Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }
}

private let noticeProcessor: PQnoticeProcessor = { context, message in
    guard let context, let message else { return }
    let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
    let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    sink.logger.info("server notice", metadata: ["db.notice": "\(text)"])
}

/// Calls `body` with a NULL-free C array of C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStrings(strings.map(Optional.some), body)
}

/// Calls `body` with a C array of C strings in which nil is NULL, and a NULL at the end.
func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    var owned: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    owned.append(nil)
    defer { for pointer in owned { free(pointer) } }
    return owned.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
    }
}

import Foundation
