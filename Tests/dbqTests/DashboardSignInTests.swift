import DBQTestSupport
import Foundation
import Logging
import RedisClient
import Testing

/// Sign-in to a real `dbq dashboard` over HTTP (curl): the limit on failed sign-ins, the
/// sign-ins kept apart from the audit of actions, and a dashboard behind a TLS proxy
/// (its public origin, the Secure cookie).
@Suite("Dashboard sign-in: rate limit, a log apart from actions, public origin and Secure cookie (real dashboard, real Redis)", .serialized)
struct DashboardSignInTests {
    /// A Redis database of its own: the failure count is per address, and every test
    /// signs in from 127.0.0.1.
    var redisURL: String {
        var url = TestServices.redisURL
        if let slash = url.lastIndex(of: "/"), url[url.index(after: slash)...].allSatisfy(\.isNumber) { url = String(url[..<slash]) }
        return url + "/5"
    }

    /// Forgets the failures counted for 127.0.0.1 (in this suite's own Redis database).
    func clearFailures() async throws {
        let connection = try await RedisConnection.connect(try RedisConfiguration(url: redisURL), logger: Logger(label: "dbq.test.signin"))
        _ = try await connection.send("DEL", "dbq:dashboard:signin-failures:127.0.0.1")
        await connection.close()
    }

    func start(_ extra: [String], token: String) async throws -> (ChildProcess, Int) {
        let config = TestServices.temporaryDirectory("dbq-signin") + "/dbq.yaml"
        try "# no databases: the dashboard reads Redis only\n".write(toFile: config, atomically: true, encoding: .utf8)
        for _ in 0..<5 {
            let port = Int.random(in: 61_000...64_999)
            let child = try ChildProcess(TestServices.dbqBinary, ["dashboard", "--listen", "127.0.0.1:\(port)"] + extra,
                                         environment: ["DBQ_REDIS_URL": redisURL, "DBQ_DASHBOARD_TOKEN": token, "DBQ_CONFIG": config])
            let up = try await eventually(.seconds(30), every: .milliseconds(200)) {
                guard child.isRunning else { return true }
                return (try? await runCommand("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/healthz"]))?.status == 0
            } && child.isRunning
            if up { return (child, port) }
            child.signal(SIGTERM)
        }
        struct NotStarted: Error {}
        throw NotStarted()
    }

    /// POST /login; returns the status, the Set-Cookie line and the page.
    func signIn(_ port: Int, name: String, token: String, origin: String? = nil) async throws -> (status: Int, cookie: String, body: String) {
        var args = ["-s", "-D", "-", "-o", "-", "-X", "POST", "--data-urlencode", "name=\(name)", "--data-urlencode", "token=\(token)"]
        if let origin { args += ["-H", "Origin: \(origin)"] }
        let r = try await runCommand("/usr/bin/curl", args + ["http://127.0.0.1:\(port)/login"])
        let status = r.stdout.split(separator: "\r\n").first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        let cookie = r.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") }.map(String.init) ?? ""
        return (status, cookie, r.stdout)
    }

    @Test("ten failed sign-ins from an address refuse the eleventh even with the right token (429); failures go to the sign-ins log, never pushing actions out of the audit")
    func limited() async throws {
        let token = "dashboard-token-\(UUID().uuidString)"
        try await clearFailures()
        let (dashboard, port) = try await start([], token: token)
        defer { dashboard.signal(SIGTERM) }
        // An action first (a script with the bearer token): it must stay on the audit page.
        let queue = "signin-\(UUID().uuidString.prefix(8).lowercased())"
        let act = try await runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Authorization: Bearer \(token)",
                                                        "-H", "X-DBQ-Actor: carol", "--data", "queue=\(queue)", "http://127.0.0.1:\(port)/actions/retry-all"])
        #expect(act.stdout == "303", "\(act.stdout)")
        for attempt in 1...DashboardLimits.signInLimit {
            let r = try await signIn(port, name: "mallory", token: "guess-\(attempt)")
            #expect(r.status == 401, "attempt \(attempt): \(r.status)")
        }
        let blocked = try await signIn(port, name: "alice", token: token)
        #expect(blocked.status == 429 && blocked.body.contains("Too many failed sign-ins from 127.0.0.1") && blocked.cookie.isEmpty, "\(blocked.status) \(blocked.body.suffix(400))")
        let audit = try await runCommand("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/audit"])
        let actions = audit.stdout.components(separatedBy: "<h2>Sign-ins</h2>")
        #expect(actions.count == 2 && actions[0].contains("carol") && actions[0].contains("retry-all") && !actions[0].contains("mallory"), "\(audit.stdout.suffix(3000))")
        #expect(actions.count == 2 && actions[1].contains("mallory") && actions[1].contains("refused: wrong token") && actions[1].contains("too many failed sign-ins"))
        try await clearFailures()
    }

    @Test("behind a TLS proxy: with --public-origin https://…, a sign-in whose Origin is the public one is accepted though Host differs, the cookie is Secure; the local origin is refused; a bad --public-origin is one message")
    func publicOrigin() async throws {
        let token = "dashboard-token-\(UUID().uuidString)"
        try await clearFailures()
        let (dashboard, port) = try await start(["--public-origin", "https://dbq.example.com"], token: token)
        defer { dashboard.signal(SIGTERM) }
        let ok = try await signIn(port, name: "alice", token: token, origin: "https://dbq.example.com")
        #expect(ok.status == 303 && ok.cookie.contains("dbq_session=") && ok.cookie.contains("Secure") && ok.cookie.contains("HttpOnly"), "\(ok.status) \(ok.cookie)")
        let local = try await signIn(port, name: "alice", token: token, origin: "http://127.0.0.1:\(port)")
        #expect(local.status == 403 && local.body.contains("public origin is https://dbq.example.com"), "\(local.status)")

        let (plain, plainPort) = try await start([], token: token)
        defer { plain.signal(SIGTERM) }
        let direct = try await signIn(plainPort, name: "alice", token: token, origin: "http://127.0.0.1:\(plainPort)")
        #expect(direct.status == 303 && !direct.cookie.contains("Secure"), "served over http: no Secure cookie: \(direct.cookie)")

        let bad = try await runCommand(TestServices.dbqBinary, ["dashboard", "--public-origin", "dbq.example.com/path"], environment: ["DBQ_REDIS_URL": redisURL])
        #expect(bad.status != 0 && bad.stderr.contains("--public-origin 'dbq.example.com/path' is not an origin"), "\(bad.stderr)")
    }
}

/// The dashboard's limits, as the tests expect them.
enum DashboardLimits {
    static let signInLimit = 10
}
