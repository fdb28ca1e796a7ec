import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Queue
import RedisQueue
import ServiceLifecycle

/// `dbq dashboard`: the pages, the actions and the assets on Hummingbird.
public enum DashboardServer {
    /// The application; `run()` it in a `ServiceGroup`.
    public static func application(data: any DashboardData, auth: DashboardAuth, host: String, port: Int, logger: Logger) -> some Service {
        let routes = DashboardRoutes(data: data, auth: auth, logger: logger)
        let router = Router(context: DashboardContext.self)
        router.add(middleware: SecurityHeaders())
        routes.register(on: router)
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "dbq-dashboard"), logger: quiet)
    }
}

/// The request context: the peer's address, for the action log.
public struct DashboardContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? "?"
    }
}

/// Headers every response carries: nothing but the dashboard's own script and style may
/// run, no page may be framed (clickjacking), and nothing is cached.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = DashboardContext
    func handle(_ request: Request, context: DashboardContext, next: (Request, DashboardContext) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}

struct DashboardRoutes: Sendable {
    let data: any DashboardData
    let auth: DashboardAuth
    let logger: Logger

    func register(on router: Router<DashboardContext>) {
        router.get("/assets/dashboard.css") { _, _ in asset(Assets.css, type: "text/css; charset=utf-8") }
        router.get("/assets/dashboard.js") { _, _ in asset(Assets.js, type: "text/javascript; charset=utf-8") }
        router.get("/assets/favicon.svg") { _, _ in asset(Assets.favicon, type: "image/svg+xml") }
        router.get("/favicon.ico") { _, _ in Response.redirect(to: "/assets/favicon.svg", type: .permanent) }
        router.get("/livez") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/healthz") { _, _ -> Response in
            let ok = (try? await data.queues()) != nil
            return Response(status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: ok ? "ok\n" : "redis does not answer\n")))
        }
        router.get("/") { request, _ in try await page(request) { context in
            let queues = try await data.queues()
            var series: [(QueueStats, [Int])] = []
            for q in queues { series.append((q, try await data.throughput(queue: q.queue, buckets: 12, bucketSeconds: 300))) }
            let artefacts = (try? await data.artefacts()) ?? []
            return OverviewPage.render(.init(queues: series, workers: try await data.workers(), schedules: try? await data.schedules(), artefacts: artefacts), context)
        } }
        router.get("/jobs") { request, _ in try await page(request) { context in
            let query = request.uri.queryParameters
            let filter = JobsPage.Filter(queue: query["queue"].flatMap { $0.isEmpty ? nil : String($0) },
                                         state: query["state"].flatMap { JobState(rawValue: String($0)) },
                                         kind: query["kind"].flatMap { $0.isEmpty ? nil : String($0) })
            let jobs = try await data.jobs(queue: filter.queue, state: filter.state, kind: filter.kind, limit: 200)
            return JobsPage.render(jobs, filter: filter, queues: try await data.queues().map(\.queue), title: "Jobs", section: "jobs", context)
        } }
        router.get("/jobs/:queue/:id") { request, ctx in try await page(request) { context in
            guard let queue = ctx.parameters.get("queue"), let id = ctx.parameters.get("id"), let job = try await data.job(id: id, queue: queue) else {
                return MessagePage.render("No such job", "There is no job \(ctx.parameters.get("id") ?? "") in queue \(ctx.parameters.get("queue") ?? ""): finished jobs are kept for a limited time (24 h when they succeed).", context)
            }
            return JobPage.render(job, context)
        } }
        router.get("/scheduled") { request, _ in try await page(request) { context in
            JobsPage.render(try await data.jobs(queue: nil, state: .scheduled, kind: nil, limit: 200), filter: .init(state: .scheduled), queues: [],
                            title: "Scheduled jobs (delayed, or waiting to retry)", section: "scheduled", context)
        } }
        router.get("/dead") { request, _ in try await page(request) { context in
            DeadPage.render(try await data.jobs(queue: nil, state: .dead, kind: nil, limit: 200), queues: try await data.queues(), context)
        } }
        router.get("/schedules") { request, _ in try await page(request) { context in SchedulesPage.render(try await data.schedules(), context) } }
        router.get("/workers") { request, _ in try await page(request) { context in WorkersPage.render(try await data.workers(), context) } }
        router.get("/artefacts") { request, _ in try await page(request) { context in
            do {
                return ArtefactsPage.render(try await data.artefacts(), error: nil, context)
            } catch {
                return ArtefactsPage.render([], error: "cannot read the storages: \(error)", context)
            }
        } }
        router.get("/audit") { request, _ in try await page(request) { context in
            AuditPage.render(try await data.audit(limit: 200), signIns: try await data.signIns(limit: 50), context)
        } }
        router.get("/login") { request, _ in try await page(request) { context in LoginPage.render(context) } }
        router.post("/login") { request, ctx in try await login(request, ctx) }
        router.post("/logout") { request, ctx in
            var response = Response.redirect(to: "/", type: .normal)
            if case .allowed = try await authorize(request, ctx, form: try await form(request)) {
                response.setCookie(Cookie(name: DashboardAuth.cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
            }
            return response
        }
        router.post("/actions/:action") { request, ctx in try await act(request, ctx) }
    }

    // MARK: - Pages

    func context(_ request: Request) -> ViewContext {
        let session = request.cookies[DashboardAuth.cookieName]?.value
        let actor = session.flatMap { auth.actor(fromSession: $0, now: Date()) }
        let flash = request.uri.queryParameters["done"].flatMap { Self.flashes[String($0)] }
        return ViewContext(actor: actor, csrf: actor == nil ? nil : session.map { auth.csrf(forSession: $0) },
                           actionsEnabled: auth.actionsEnabled, now: Date(), flash: flash)
    }

    /// Fixed messages after an action (a message from the URL would let a link put words
    /// in the dashboard's mouth).
    static let flashes = ["retried": "The job is pending again.", "cancelled": "The job is cancelled (a running one stops at its next heartbeat).",
                          "purged": "Purged.", "retried-all": "The dead jobs are pending again.", "signed-in": "Signed in."]

    func page(_ request: Request, status: HTTPResponse.Status = .ok, _ build: (ViewContext) async throws -> Page) async throws -> Response {
        let context = context(request)
        let fragment = request.headers[HTTPField.Name("X-DBQ-Fragment")!] == "1"
        let html: String
        do {
            html = Layout.render(try await build(context), context, fragment: fragment)
        } catch {
            logger.warning("dashboard page failed", metadata: ["error": "\(error)", "http.path": "\(request.uri.path)"])
            let page = MessagePage.render("Cannot read Redis", HTML.safe("\(error)"), context)
            return Response(status: .serviceUnavailable, headers: [.contentType: "text/html; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: Layout.render(page, context, fragment: fragment))))
        }
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: - Forms and actions

    func form(_ request: Request) async throws -> [String: String] {
        var request = request
        let body = try await request.collectBody(upTo: 16 << 10)
        var fields: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if let name = parts.first { fields[name] = parts.count > 1 ? parts[1] : "" }
        }
        return fields
    }

    func authorize(_ request: Request, _ ctx: DashboardContext, form: [String: String]) async throws -> DashboardAuth.Decision {
        let bearer = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        return auth.authorize(bearer: bearer, actorHeader: request.headers[HTTPField.Name("X-DBQ-Actor")!],
                              session: request.cookies[DashboardAuth.cookieName]?.value, csrf: form["csrf"],
                              origin: request.headers[HTTPField.Name("Origin")!], host: request.head.authority, now: Date())
    }

    func login(_ request: Request, _ ctx: DashboardContext) async throws -> Response {
        let fields = try await form(request)
        let name = fields["name"] ?? ""
        guard auth.actionsEnabled else { return try await refuse(request, 403, "this dashboard is read-only (started without DBQ_DASHBOARD_TOKEN)") }
        if let origin = request.headers[HTTPField.Name("Origin")!], !auth.originMatches(origin, host: request.head.authority) {
            return try await refuse(request, 403, "a sign-in from another site (Origin \(origin)) is refused"
                + (auth.publicOrigin.map { " (the dashboard's public origin is \($0): set --public-origin to the address browsers use)" } ?? ""))
        }
        guard DashboardAuth.validName(name) else {
            return try await page(request, status: .badRequest) { LoginPage.render($0, error: "Give your name: letters, digits and . _ @ - (up to 64).") }
        }
        // Failed sign-ins are counted per address in Redis (every dashboard of the fleet
        // sees the same count) and kept on a list of their own: they cannot push the
        // actions out of the audit log.
        let address = ctx.remoteAddress
        if (try? await data.signInFailures(address: address)) ?? 0 >= DashboardAuth.signInLimit {
            logger.notice("dashboard sign-in refused: too many failures", metadata: ["dashboard.actor": "\(name)", "net.peer": "\(address)"])
            try? await data.recordSignIn(AuditEntry(at: Date(), actor: name, address: address, action: "sign-in", target: "", outcome: "refused: too many failed sign-ins"))
            return try await page(request, status: .tooManyRequests) {
                LoginPage.render($0, error: "Too many failed sign-ins from \(address): try again in \(Int(DashboardAuth.signInWindow.components.seconds / 60)) minutes.")
            }
        }
        guard auth.tokenMatches(fields["token"] ?? ""), let session = auth.session(for: name, now: Date()) else {
            logger.notice("dashboard sign-in refused", metadata: ["dashboard.actor": "\(name)", "net.peer": "\(address)"])
            _ = try? await data.countSignInFailure(address: address, window: DashboardAuth.signInWindow)
            try? await data.recordSignIn(AuditEntry(at: Date(), actor: name, address: address, action: "sign-in", target: "", outcome: "refused: wrong token"))
            return try await page(request, status: .unauthorized) { LoginPage.render($0, error: "The token is wrong.") }
        }
        logger.notice("dashboard sign-in", metadata: ["dashboard.actor": "\(name)", "net.peer": "\(address)"])
        try? await data.recordSignIn(AuditEntry(at: Date(), actor: name, address: address, action: "sign-in", target: "", outcome: "ok"))
        var response = Response.redirect(to: "/?done=signed-in", type: .normal)
        response.setCookie(Cookie(name: DashboardAuth.cookieName, value: session, maxAge: Int(DashboardAuth.sessionLifetime), path: "/",
                                  secure: auth.secureCookie, httpOnly: true, sameSite: .strict))
        return response
    }

    func refuse(_ request: Request, _ status: Int, _ reason: String) async throws -> Response {
        try await page(request, status: HTTPResponse.Status(code: status)) { MessagePage.render("Refused", reason, $0) }
    }

    func act(_ request: Request, _ ctx: DashboardContext) async throws -> Response {
        let action = ctx.parameters.get("action") ?? ""
        let fields = try await form(request)
        let queue = fields["queue"], id = fields["id"]
        switch try await authorize(request, ctx, form: fields) {
        case .refused(let status, let reason):
            logger.notice("dashboard action refused", metadata: ["dashboard.action": "\(action)", "net.peer": "\(ctx.remoteAddress)", "reason": "\(reason)"])
            return try await refuse(request, status, reason)
        case .allowed(let actor):
            let target = [queue, id].compactMap { $0 }.joined(separator: "/")
            var outcome = "ok"
            var location = "/"
            switch action {
            case "retry", "cancel":
                guard let id, let queue else { return try await refuse(request, 400, "\(action) needs queue and id") }
                let after = action == "retry" ? try await data.retry(id: id, queue: queue) : try await data.cancel(id: id, queue: queue)
                outcome = after.map { "now \($0)" } ?? "no such job"
                location = "/jobs/\(HTML.query(queue))/\(HTML.query(id))?done=\(action == "retry" ? "retried" : "cancelled")"
            case "purge":
                guard let queue, let state = fields["state"].flatMap(JobState.init(rawValue:)), state.isFinished else {
                    return try await refuse(request, 400, "purge needs a queue and a finished state (dead, succeeded or cancelled)")
                }
                outcome = "\(try await data.purge(queue: queue, state: state)) \(state.rawValue) jobs removed"
                location = "/dead?done=purged"
            case "retry-all":
                guard let queue else { return try await refuse(request, 400, "retry-all needs a queue") }
                outcome = "\(try await data.retryAll(queue: queue)) jobs pending again"
                location = "/dead?done=retried-all"
            default:
                return try await refuse(request, 404, "there is no action '\(action)' (retry, cancel, purge, retry-all)")
            }
            logger.notice("dashboard action", metadata: ["dashboard.actor": "\(actor)", "dashboard.action": "\(action)", "dashboard.target": "\(target)",
                                                         "dashboard.outcome": "\(outcome)", "net.peer": "\(ctx.remoteAddress)"])
            try await data.record(AuditEntry(at: Date(), actor: actor, address: ctx.remoteAddress, action: action, target: target, outcome: outcome))
            return Response.redirect(to: location, type: .normal)
        }
    }
}
