import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import PostgresClient
import Synchronization
import Testing

/// Against the real PostgreSQL started by deploy/local/start.sh.
@Suite("PostgreSQL client against a real server")
struct PostgresIntegrationTests {
    let logger = Logger(label: "test.postgres")

    func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(TestServices.databaseURL, logger: logger)
    }

    @Test("parameterised queries with typed access to rows and NULL")
    func query() async throws {
        let db = try await connect()
        let rows = try await db.query(
            "SELECT $1::int + 1 AS n, $2::text AS t, $3::text IS NULL AS isnull, $4::bool AS b",
            [41, "it's \"quoted\"; --", nil, PostgresParameter(true)])
        #expect(rows.columns == ["n", "t", "isnull", "b"])
        #expect(rows[0].int("n") == 42)
        #expect(rows[0]["t"] == "it's \"quoted\"; --")
        #expect(rows[0].bool("isnull") == true)
        #expect(rows[0].bool("b") == true)
        #expect(await db.serverVersion >= 100_000)
    }

    @Test("a server error carries its SQLSTATE, and the connection goes on")
    func sqlState() async throws {
        let db = try await connect()
        do {
            try await db.query("SELECT * FROM dbq_no_such_table")
            Issue.record("query of a missing table succeeded")
        } catch let error as PostgresError {
            #expect(error.code == .server)
            #expect(error.sqlState == "42P01")
            #expect(error.description.contains("dbq_no_such_table"))
            #expect(!error.isTransient)
        }
        do {
            try await db.query("SELECT 1/0")
        } catch let error as PostgresError {
            #expect(error.sqlState == "22012")
        }
        #expect(try await db.query("SELECT 1").scalar == "1")
    }

    @Test("hostile table names round-trip through PQescapeIdentifier, matching the pure quoting")
    func hostileIdentifiers() async throws {
        let db = try await connect()
        for name in ["robert\"); DROP TABLE x; --", "Mixed Case", "ünï", "a;b", "tab\tname"] {
            let quoted = try await db.quoteIdentifier(name)
            #expect(quoted == (try PostgresIdentifier.quoted(name)))
            try await db.execute("CREATE TEMP TABLE \(quoted) (v int)")
            try await db.query("INSERT INTO \(quoted) VALUES ($1)", [7])
            #expect(try await db.query("SELECT v FROM \(quoted)").scalar == "7")
            let found = try await db.query("SELECT count(*) FROM pg_class WHERE relname = $1", [PostgresParameter(name)]).scalar
            #expect(found == "1")
        }
    }

    @Test("COPY TO of 1,000,000 rows streams in bounded chunks with bounded memory")
    func copyOutBounded() async throws {
        // Measured in a process of its own, so other tests' memory does not blur it.
        let result = try await runCommand(TestServices.dbqBinary, ["bench", "copy", "--rows", "1000000", "--json"],
                                    environment: ["DBQ_DATABASE_URL": TestServices.databaseURL], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        struct Figures: Decodable { let rows: Int; let bytes: Int; let largest_chunk: Int; let peak_rss: Int }
        let figures = try JSONDecoder().decode(Figures.self, from: Data(result.stdout.utf8))
        #expect(figures.rows == 1_000_000)
        #expect(figures.bytes > 200_000_000)
        // A chunk is one 256 KiB buffer plus at most one row.
        #expect(figures.largest_chunk < (256 << 10) + 4096)
        // 200 MB went through a process that never held more than a few chunks of it.
        #expect(figures.peak_rss < 48 << 20, "peak RSS \(figures.peak_rss) bytes")
    }

    @Test("COPY FROM a stream, and an error in the stream rolls the COPY back")
    func copyIn() async throws {
        let db = try await connect()
        try await db.execute("CREATE TEMP TABLE copy_in (id int, name text)")
        let chunks = (0..<10).map { c in Array((0..<1000).map { "\(c * 1000 + $0)\tname \($0)\n" }.joined().utf8) }
        let count = try await db.copyIn("COPY copy_in FROM STDIN", from: ByteStream.chunks(chunks))
        #expect(count == 10_000)
        #expect(try await db.query("SELECT count(*), sum(id) FROM copy_in")[0].values == ["10000", "49995000"])

        struct SourceFailed: Error {}
        // One good chunk, then the source fails: the rows already sent must not stay.
        let calls = Mutex(0)
        let broken = ByteStream {
            let call = calls.withLock { n in n += 1; return n }
            if call == 1 { return Array("99999\tlate\n".utf8) }
            throw SourceFailed()
        }
        await #expect(throws: SourceFailed.self) {
            try await db.copyIn("COPY copy_in FROM STDIN", from: broken)
        }
        #expect(try await db.query("SELECT count(*) FROM copy_in").scalar == "10000")
    }

    @Test("bad COPY data is a server error with SQLSTATE, and the connection goes on")
    func copyInBadData() async throws {
        let db = try await connect()
        try await db.execute("CREATE TEMP TABLE copy_bad (id int)")
        do {
            try await db.copyIn("COPY copy_bad FROM STDIN", from: ByteStream.chunks([Array("1\nnot a number\n".utf8)]))
            Issue.record("bad COPY data accepted")
        } catch let error as PostgresError {
            #expect(error.sqlState == "22P02")
        }
        #expect(try await db.query("SELECT count(*) FROM copy_bad").scalar == "0")
    }

    @Test("a consumer that stops reading a COPY early leaves a usable connection")
    func abandonedCopy() async throws {
        let db = try await connect()
        var iterator = db.copyOut("COPY (SELECT generate_series(1, 5000000)) TO STDOUT", chunkSize: 1 << 16).makeAsyncIterator()
        _ = try await iterator.next()
        #expect(try await db.query("SELECT 2").scalar == "2")
    }

    /// Waits until the server shows the connection's statement running.
    func waitUntilActive(_ pid: String) async throws {
        let watcher = try await connect()
        for _ in 0..<500 {
            let state = try await watcher.query("SELECT state FROM pg_stat_activity WHERE pid = $1::int", [PostgresParameter(pid)]).scalar
            if state == "active" { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("cancel() stops pg_sleep within a round trip")
    func cancel() async throws {
        let db = try await connect()
        let pid = try await db.query("SELECT pg_backend_pid()").scalar!
        let started = ContinuousClock.now
        async let sleeping: PostgresRows = db.query("SELECT pg_sleep(30)")
        try await waitUntilActive(pid)
        db.cancel()
        do {
            _ = try await sleeping
            Issue.record("pg_sleep was not cancelled")
        } catch let error as PostgresError {
            #expect(error.code == .cancelled)
            #expect(error.sqlState == "57014")
        }
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
        #expect(try await db.query("SELECT 3").scalar == "3")
    }

    @Test("cancelling the awaiting task cancels the statement on the server")
    func taskCancellation() async throws {
        let db = try await connect()
        let pid = try await db.query("SELECT pg_backend_pid()").scalar!
        let task = Task { try await db.query("SELECT pg_sleep(30)") }
        try await waitUntilActive(pid)
        task.cancel()
        let result = await task.result
        #expect(throws: PostgresError.self) { try result.get() }
        #expect(try await db.query("SELECT 4").scalar == "4")
    }

    @Test("a task cancelled before its statement is sent never sends it")
    func cancelledBeforeSend() async throws {
        let db = try await connect()
        let task = Task {
            try await Task.sleep(for: .milliseconds(200))
            return try await db.query("SELECT pg_sleep(30)")
        }
        task.cancel()
        let started = ContinuousClock.now
        _ = await task.result
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
        #expect(try await db.query("SELECT 5").scalar == "5")
    }

    @Test("server notices go to the logger, not to stderr")
    func notices() async throws {
        let db = try await connect()
        try await db.execute("DROP TABLE IF EXISTS dbq_never_existed")
        try await db.execute("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$")
    }

    @Test("a wrong password: one clear error without the password")
    func wrongPassword() async throws {
        let base = try PostgresConnectionString(TestServices.databaseURL)
        let url = "postgresql://\(base.user ?? "postgres"):wrong-secret-pw@\(base.host):\(base.port)/\(base.database ?? "postgres")"
        do {
            _ = try await PostgresConnection.connect(url, logger: logger)
            Issue.record("connected with a wrong password")
        } catch let error as PostgresError {
            #expect(error.code == .connection)
            #expect(error.description.contains("password authentication failed"))
            #expect(error.description.contains("\(base.host):\(base.port)"))
            #expect(!error.description.contains("wrong-secret-pw"))
        }
    }

    @Test("nothing listening: one clear error naming host and port, quickly")
    func refused() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await PostgresConnection.connect("postgresql://u:pw@127.0.0.1:\(TestServices.closedPort)/db", logger: logger)
            Issue.record("connected to a closed port")
        } catch let error as PostgresError {
            #expect(error.code == .connection)
            #expect(error.description.contains("127.0.0.1"))
            #expect(error.description.contains("refused"))
        }
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
    }

    @Test("a server that never answers: connect_timeout ends the wait with a clear error")
    func silentServer() async throws {
        let silent = try SilentServer()
        let started = ContinuousClock.now
        do {
            _ = try await PostgresConnection.connect("postgresql://u@127.0.0.1:\(silent.port)/db?connect_timeout=2", logger: logger)
            Issue.record("connected to a silent server")
        } catch let error as PostgresError {
            #expect(error.code == .connection)
            #expect(error.description.contains("timeout"))
        }
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
    }

    @Test("an unknown database is named in the error")
    func unknownDatabase() async throws {
        let base = try PostgresConnectionString(TestServices.databaseURL)
        do {
            _ = try await PostgresConnection.connect(base.replacingDatabase("dbq_no_such_db"), logger: logger)
            Issue.record("connected to a missing database")
        } catch let error as PostgresError {
            #expect(error.description.contains("dbq_no_such_db"))
        }
    }

    @Test("a connection lost inside a transaction fails, and keeps failing: nothing runs outside the snapshot")
    func lostInsideTransaction() async throws {
        let db = try await connect(), admin = try await connect()
        _ = try await db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        let pid = try #require(try await db.query("SELECT pg_backend_pid()").scalar)
        _ = try await admin.query("SELECT pg_terminate_backend($1::int)", [PostgresParameter(pid)])
        await #expect(throws: PostgresError.self) { try await db.query("SELECT 1") }
        // No silent reconnect: a later statement would run outside the transaction.
        do {
            try await db.query("SELECT 1")
            Issue.record("a statement ran on a fresh session after the transaction was lost")
        } catch let error as PostgresError {
            #expect(error.code == .connection)
            #expect(error.isTransient)
            #expect(error.message.contains("lost inside a transaction"))
        }
    }

    @Test("a connection lost outside a transaction reconnects on the next call")
    func lostOutsideTransaction() async throws {
        let db = try await connect(), admin = try await connect()
        let pid = try #require(try await db.query("SELECT pg_backend_pid()").scalar)
        _ = try await admin.query("SELECT pg_terminate_backend($1::int)", [PostgresParameter(pid)])
        _ = try? await db.query("SELECT 1")
        #expect(try await db.query("SELECT 41 + 1").scalar == "42")
    }
}
