@testable import Dashboard
import Foundation
import Queue
import RedisQueue
import Testing

@Suite("Dashboard: sessions, CSRF and origin checks, escaping, secrets (pure)")
struct DashboardTests {
    let auth = DashboardAuth(token: "operator-token-0123456789")
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("a session names who signed in until it expires; a changed token, a forged name or MAC ends it")
    func sessions() throws {
        let session = try #require(auth.session(for: "alice", now: now))
        #expect(auth.actor(fromSession: session, now: now) == "alice")
        #expect(auth.actor(fromSession: session, now: now + DashboardAuth.sessionLifetime + 1) == nil, "expired")
        #expect(DashboardAuth(token: "another-token").actor(fromSession: session, now: now) == nil, "the token changed")
        #expect(auth.actor(fromSession: session.replacingOccurrences(of: "alice", with: "mallory"), now: now) == nil, "forged name")
        #expect(auth.actor(fromSession: String(session.dropLast()) + (session.last == "0" ? "1" : "0"), now: now) == nil, "forged MAC")
        #expect(auth.actor(fromSession: "garbage", now: now) == nil)
        #expect(auth.session(for: "bad name<script>", now: now) == nil, "names are letters, digits and ._@-")
        #expect(auth.session(for: "a.b@c-d_e", now: now) != nil)
        #expect(auth.tokenMatches("operator-token-0123456789"))
        #expect(!auth.tokenMatches("operator-token-012345678"))
        #expect(!auth.tokenMatches(""))
    }

    @Test("a POST is allowed with a session and its CSRF value from the same origin, or with the bearer token; refused otherwise", arguments: [
        ("session, csrf, same origin", true),
        ("session, csrf, no origin header", true),
        ("session, csrf, another origin", false),
        ("session, csrf, origin null", false),
        ("session, no csrf", false),
        ("session, csrf of another session", false),
        ("no session", false),
        ("bearer", true),
        ("wrong bearer", false),
    ])
    func posts(_ label: String, _ allowed: Bool) throws {
        let session = try #require(auth.session(for: "alice", now: now))
        let other = try #require(auth.session(for: "bob", now: now))
        var bearer: String?, cookie: String? = session, csrf: String? = auth.csrf(forSession: session), origin: String? = "http://127.0.0.1:8080"
        switch label {
        case "session, csrf, no origin header": origin = nil
        case "session, csrf, another origin": origin = "https://evil.example"
        case "session, csrf, origin null": origin = "null"
        case "session, no csrf": csrf = nil
        case "session, csrf of another session": csrf = auth.csrf(forSession: other)
        case "no session": cookie = nil
        case "bearer": bearer = "operator-token-0123456789"; cookie = nil; csrf = nil; origin = nil
        case "wrong bearer": bearer = "nope"; cookie = nil; csrf = nil
        default: break
        }
        let decision = auth.authorize(bearer: bearer, actorHeader: "ci-bot", session: cookie, csrf: csrf, origin: origin, host: "127.0.0.1:8080", now: now)
        if allowed {
            #expect(decision == .allowed(actor: label == "bearer" ? "ci-bot" : "alice"), "\(label): \(decision)")
        } else if case .allowed = decision {
            Issue.record("\(label) was allowed")
        }
    }

    @Test("behind a proxy: the public origin is what Origin must match (Host may differ); over https the cookie is Secure; origins are compared normalized")
    func publicOrigin() throws {
        #expect(DashboardAuth.normalizedOrigin("HTTPS://Dbq.Example.com:443/") == "https://dbq.example.com")
        #expect(DashboardAuth.normalizedOrigin("http://10.0.0.5:8080") == "http://10.0.0.5:8080")
        for bad in ["dbq.example.com", "https://dbq.example.com/admin", "ftp://x", "https://x?y=1"] { #expect(DashboardAuth.normalizedOrigin(bad) == nil, "\(bad)") }
        let proxied = DashboardAuth(token: "operator-token-0123456789", publicOrigin: "https://dbq.example.com")
        #expect(proxied.secureCookie && !auth.secureCookie && !DashboardAuth(token: "t", publicOrigin: "http://dbq.internal").secureCookie)
        let session = try #require(proxied.session(for: "alice", now: now))
        let csrf = proxied.csrf(forSession: session)
        // nginx's default proxy_pass sends Host: 127.0.0.1:8080; the browser sends the public origin.
        #expect(proxied.authorize(bearer: nil, actorHeader: nil, session: session, csrf: csrf, origin: "https://dbq.example.com", host: "127.0.0.1:8080", now: now) == .allowed(actor: "alice"))
        guard case .refused(403, let reason) = proxied.authorize(bearer: nil, actorHeader: nil, session: session, csrf: csrf, origin: "http://127.0.0.1:8080", host: "127.0.0.1:8080", now: now) else {
            Issue.record("the local origin was accepted behind a public origin"); return
        }
        #expect(reason.contains("public origin is https://dbq.example.com"))
        // Without a public origin, the old rule: Origin's host and port are the Host header.
        #expect(auth.originMatches("http://127.0.0.1:8080", host: "127.0.0.1:8080") && !auth.originMatches("https://dbq.example.com", host: "127.0.0.1:8080"))
    }

    @Test("without a token every action is refused, naming why")
    func readOnly() {
        let readOnly = DashboardAuth(token: nil)
        #expect(!readOnly.actionsEnabled)
        #expect(readOnly.session(for: "alice", now: now) == nil)
        guard case .refused(403, let reason) = readOnly.authorize(bearer: "x", actorHeader: nil, session: nil, csrf: nil, origin: nil, host: nil, now: now) else {
            Issue.record("not refused")
            return
        }
        #expect(reason.contains("DBQ_DASHBOARD_TOKEN"))
    }

    @Test("data from jobs is escaped wherever it goes, and passwords in URLs are masked")
    func escaping() {
        let hostile = "<script>alert('x')</script>\"&"
        let job = JobRecord(id: "01a2-<b>", queue: "q\"<", kind: hostile, state: "dead", attempt: 1, maxAttempts: 3,
                            error: "cannot connect to postgresql://app:s3cret@db/app and redis://:pw2@r:6379/0: " + hostile,
                            payload: .object(["note": .string(hostile)]))
        let context = ViewContext(actor: "alice", csrf: "c\"s<rf", actionsEnabled: true, now: now)
        for page in [JobPage.render(job, context), JobsPage.render([job], filter: .init(kind: hostile), queues: [hostile], title: "Jobs", section: "jobs", context),
                     DeadPage.render([job], queues: [], context)] {
            let html = Layout.render(page, context, fragment: false)
            #expect(!html.contains("<script>alert"), "unescaped markup in \(page.title)")
            #expect(!html.contains("s3cret") && !html.contains("pw2"), "a password in \(page.title)")
            #expect(!html.contains("value=\"c\"s<rf\""))
        }
        #expect(HTML.safe("see postgresql://u:p@h/d, then redis://:x@r/0") == "see postgresql://u:***@h/d, then redis://:***@r/0")
        #expect(HTML.safe("no url here") == "no url here")
        #expect(HTML.text("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
    }

    @Test("forms carry the session's CSRF value; without a session the pages still render; read-only pages offer no action")
    func forms() {
        let job = JobRecord(id: "j1", queue: "q", kind: "noop", state: "dead")
        let signedIn = Layout.render(JobPage.render(job, ViewContext(actor: "alice", csrf: "abc", actionsEnabled: true, now: now)),
                                     ViewContext(actor: "alice", csrf: "abc", actionsEnabled: true, now: now), fragment: false)
        #expect(signedIn.contains("name=\"csrf\" value=\"abc\"") && signedIn.contains("/actions/retry"))
        let readOnly = ViewContext(actor: nil, csrf: nil, actionsEnabled: false, now: now)
        let html = Layout.render(JobPage.render(job, readOnly), readOnly, fragment: false)
        #expect(!html.contains("/actions/") && html.contains("read-only"))
        #expect(Layout.render(JobPage.render(job, readOnly), readOnly, fragment: true).hasPrefix("<h1>"), "a fragment is the main element's content")
    }

    @Test("throughput bars: one per bucket, scaled to the busiest")
    func sparkline() {
        let svg = OverviewPage.sparkline([0, 5, 10])
        #expect(svg.components(separatedBy: "<rect").count == 4)
        #expect(svg.contains("height=\"20\"><title>10"))
        #expect(svg.contains("height=\"0\"><title>0"))
    }
}
