import CLibpq
import DBQSupport

extension PostgresConnection {
    /// Streams the output of a `COPY … TO STDOUT` statement in chunks of about
    /// `chunkSize` bytes. The rows are read from the server only as the consumer asks
    /// for the next chunk, so memory stays at one chunk whatever the table's size.
    ///
    /// The connection belongs to the stream until it ends; a consumer that stops early
    /// leaves the COPY to be cancelled and drained by the next call on the connection.
    /// `rows` is told the number of rows the server sent, once the COPY has ended.
    public func copyOut(_ sql: String, chunkSize: Int = 256 << 10, rows: (@Sendable (Int) -> Void)? = nil) -> ByteStream {
        let started = Mutex(false)
        return ByteStream {
            try await self.cancellable { _ in
                try await self.lane.run { () throws -> [UInt8]? in
                    let first = started.withLock { s in defer { s = true }; return !s }
                    if first { try self.beginCopyOut(sql) } else if self.copyState != .copyOut { return nil }
                    return try self.readCopyChunk(limit: chunkSize, rows: rows)
                }
            }
        }
    }

    /// Feeds `source` to a `COPY … FROM STDIN` statement and returns the number of rows
    /// the server took. If `source` throws, the COPY is ended with that error, so the
    /// server rolls it back, and the error is rethrown.
    @discardableResult
    public func copyIn<S: AsyncSequence>(_ sql: String, from source: S) async throws -> Int where S.Element == [UInt8] {
        try await cancellable { flag in
            try await lane.run { () throws in
                try flag.check()
                try self.beginCopyIn(sql)
            }
            do {
                for try await chunk in source where !chunk.isEmpty {
                    try await lane.run { () throws in try self.putCopyData(chunk) }
                }
            } catch {
                let reason = "\(error)"
                _ = try? await lane.run { () throws -> Int in try self.endCopyIn(failure: reason) }
                throw error
            }
            return try await lane.run { () throws -> Int in try self.endCopyIn(failure: nil) }
        }
    }

    // MARK: - On the lane

    private func beginCopyOut(_ sql: String) throws(PostgresError) {
        let conn = try live()
        guard let result = PQexec(conn, sql) else { throw connectionError(conn, fallback: "COPY failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_OUT else {
            if PQresultStatus(result) == PGRES_FATAL_ERROR { throw serverError(result, conn: conn) }
            throw PostgresError(code: .protocolViolation, message: "statement is not a COPY … TO STDOUT", endpoint: connectionString.endpoint)
        }
        copyState = .copyOut
    }

    private func readCopyChunk(limit: Int, rows: (@Sendable (Int) -> Void)?) throws(PostgresError) -> [UInt8]? {
        guard let conn = handle else { throw PostgresError(code: .closed, message: "connection is closed") }
        var chunk: [UInt8] = []
        chunk.reserveCapacity(limit + 4096)
        while chunk.count < limit {
            var buffer: UnsafeMutablePointer<CChar>?
            let n = PQgetCopyData(conn, &buffer, 0)
            if n > 0, let buffer {
                buffer.withMemoryRebound(to: UInt8.self, capacity: Int(n)) { chunk.append(contentsOf: UnsafeBufferPointer(start: $0, count: Int(n))) }
                PQfreemem(buffer)
            } else if n == -1 {
                copyState = .idle
                let count = try finishResults(conn)
                rows?(count)
                return chunk.isEmpty ? nil : chunk
            } else {
                copyState = .idle
                let error = connectionError(conn, fallback: "COPY failed")
                _ = try? finishResults(conn)
                throw error
            }
        }
        return chunk
    }

    private func beginCopyIn(_ sql: String) throws(PostgresError) {
        let conn = try live()
        guard let result = PQexec(conn, sql) else { throw connectionError(conn, fallback: "COPY failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_IN else {
            if PQresultStatus(result) == PGRES_FATAL_ERROR { throw serverError(result, conn: conn) }
            throw PostgresError(code: .protocolViolation, message: "statement is not a COPY … FROM STDIN", endpoint: connectionString.endpoint)
        }
        copyState = .copyIn
    }

    private func putCopyData(_ chunk: [UInt8]) throws(PostgresError) {
        guard let conn = handle, copyState == .copyIn else {
            throw PostgresError(code: .protocolViolation, message: "no COPY FROM in progress")
        }
        let status = chunk.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(conn, $0.baseAddress, Int32($0.count)) }
        }
        if status != 1 { throw connectionError(conn, fallback: "COPY data could not be sent") }
    }

    private func endCopyIn(failure: String?) throws(PostgresError) -> Int {
        guard let conn = handle else { throw PostgresError(code: .closed, message: "connection is closed") }
        copyState = .idle
        if PQputCopyEnd(conn, failure) != 1 { throw connectionError(conn, fallback: "COPY could not be ended") }
        var rows = 0
        var firstError: PostgresError?
        while let result = PQgetResult(conn) {
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                rows = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if firstError == nil {
                firstError = serverError(result, conn: conn)
            }
            PQclear(result)
        }
        if let firstError { throw firstError }
        return rows
    }

    /// Reads the results after a COPY until libpq has none left; throws the first error,
    /// or returns the rows the COPY's command tag counts.
    @discardableResult
    private func finishResults(_ conn: OpaquePointer) throws(PostgresError) -> Int {
        var firstError: PostgresError?
        var rows = 0
        while let result = PQgetResult(conn) {
            let status = PQresultStatus(result)
            if status == PGRES_COMMAND_OK {
                rows = Int(String(cString: PQcmdTuples(result))) ?? rows
            } else if status != PGRES_TUPLES_OK && firstError == nil {
                firstError = serverError(result, conn: conn)
            }
            PQclear(result)
        }
        if let firstError { throw firstError }
        return rows
    }

    /// Ends a COPY its consumer walked away from, so the connection can be used again.
    func abandonCopy(_ conn: OpaquePointer) {
        switch copyState {
        case .copyOut:
            cancel()
            while true {
                var buffer: UnsafeMutablePointer<CChar>?
                let n = PQgetCopyData(conn, &buffer, 0)
                if let buffer { PQfreemem(buffer) }
                if n < 0 { break }
            }
        case .copyIn:
            _ = PQputCopyEnd(conn, "abandoned by the client")
        case .idle:
            return
        }
        copyState = .idle
        _ = try? finishResults(conn)
    }
}

import Synchronization
