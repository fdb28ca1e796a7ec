import Crypto
import Foundation

/// Who may act on the dashboard, decided without state on the server.
///
/// Reading needs nothing. Actions (retry, cancel, purge) need the operator token
/// (`DBQ_DASHBOARD_TOKEN`): a browser signs in once with a name and the token and gets a
/// session cookie (`name.expiry.mac`, HttpOnly, SameSite=Strict) whose MAC is keyed by
/// the token, so changing the token ends every session; each form carries a CSRF value
/// bound to the session. A script sends `Authorization: Bearer TOKEN` (and its name in
/// `X-DBQ-Actor`), which a browser never adds by itself. Without a token configured the
/// dashboard is read-only.
public struct DashboardAuth: Sendable {
    /// The MAC key's bytes (SymmetricKey is not Sendable; bytes are).
    let keyBytes: [UInt8]?
    var key: SymmetricKey? { keyBytes.map { SymmetricKey(data: $0) } }
    public static let cookieName = "dbq_session"
    public static let sessionLifetime: TimeInterval = 12 * 3600

    /// Failed sign-ins from one address within `signInWindow` before it is refused until
    /// the window passes (a guess of the token costs a quarter of an hour per ten).
    public static let signInLimit = 10
    public static let signInWindow: Duration = .seconds(15 * 60)

    /// `token` nil or empty: read-only. `publicOrigin`: the origin browsers reach the
    /// dashboard at (`https://dbq.example.com`) when a proxy serves it; requests' Origin
    /// is compared with it instead of the Host header (which a proxy's default
    /// `proxy_pass` rewrites), and over https the session cookie is `Secure`.
    public init(token: String?, publicOrigin: String? = nil) {
        keyBytes = token.flatMap { $0.isEmpty ? nil : Array(("dbq dashboard v1\u{0}" + $0).utf8) }
        self.token = token.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.publicOrigin = publicOrigin.flatMap(Self.normalizedOrigin)
    }
    private let token: [UInt8]?
    public let publicOrigin: String?

    /// The session cookie is sent over TLS only when the dashboard is served over https.
    public var secureCookie: Bool { publicOrigin?.hasPrefix("https://") == true }

    /// `scheme://host[:port]` lower-cased, the default port left out; nil when it is not an
    /// origin (a path, a query, no host).
    public static func normalizedOrigin(_ text: String) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host?.lowercased(), !host.isEmpty, url.path.isEmpty || url.path == "/", url.query == nil else { return nil }
        let port = url.port.flatMap { (scheme == "https" && $0 == 443) || (scheme == "http" && $0 == 80) ? nil : $0 }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    /// Whether a request's Origin is this dashboard: the public origin when configured,
    /// else the Host the request came to.
    public func originMatches(_ origin: String, host: String?) -> Bool {
        if let publicOrigin { return Self.normalizedOrigin(origin) == publicOrigin }
        let originHost = URL(string: origin)?.host.map { h in URL(string: origin)?.port.map { "\(h):\($0)" } ?? h }
        return host != nil && originHost == host
    }

    public var actionsEnabled: Bool { key != nil }

    /// Constant-time comparison with the configured token.
    public func tokenMatches(_ candidate: String) -> Bool {
        guard let token else { return false }
        let given = Array(candidate.utf8)
        var diff = UInt8(given.count == token.count ? 0 : 1)
        for i in 0..<max(given.count, token.count) {
            diff |= (i < given.count ? given[i] : 0) ^ (i < token.count ? token[i] : 0)
        }
        return diff == 0
    }

    /// A name someone signs in with: letters, digits and `._@-`, 1 to 64 characters.
    public static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "._@-".unicodeScalars.contains($0) }
    }

    /// The cookie value for `name`, valid until `now + sessionLifetime`.
    public func session(for name: String, now: Date) -> String? {
        guard key != nil, Self.validName(name) else { return nil }
        let expiry = Int(now.timeIntervalSince1970 + Self.sessionLifetime)
        let body = "\(name).\(expiry)"
        return body + "." + mac("session:" + body)
    }

    /// The name a cookie value was issued for, if it is genuine and not expired.
    public func actor(fromSession value: String, now: Date) -> String? {
        guard key != nil else { return nil }
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, let expiry = Int(parts[parts.count - 2]) else { return nil }
        let name = parts[0..<(parts.count - 2)].joined(separator: ".")
        let body = "\(name).\(expiry)"
        guard Self.constantTimeEqual(mac("session:" + body), String(parts[parts.count - 1])),
              Double(expiry) > now.timeIntervalSince1970, Self.validName(name) else { return nil }
        return name
    }

    /// The CSRF value the forms of a session carry.
    public func csrf(forSession value: String) -> String { mac("csrf:" + value) }

    func mac(_ text: String) -> String {
        guard let key else { return "" }
        return HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key).map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// Whether a state-changing request may go on: who it is, or why not.
    public enum Decision: Equatable, Sendable {
        case allowed(actor: String)
        case refused(status: Int, reason: String)
    }

    /// Decides a POST. `origin` and `host` are the request's headers: a browser's
    /// cross-site request names another origin and is refused even with a cookie.
    public func authorize(bearer: String?, actorHeader: String?, session: String?, csrf: String?, origin: String?, host: String?, now: Date) -> Decision {
        guard actionsEnabled else {
            return .refused(status: 403, reason: "actions are disabled: this dashboard was started without DBQ_DASHBOARD_TOKEN, so it is read-only")
        }
        if let bearer {
            guard tokenMatches(bearer) else { return .refused(status: 401, reason: "the bearer token is wrong") }
            let name = actorHeader.flatMap { Self.validName($0) ? $0 : nil } ?? "token"
            return .allowed(actor: name)
        }
        if let origin, !originMatches(origin, host: host) {
            return .refused(status: 403, reason: "a request from another site (Origin \(origin)) cannot act on this dashboard"
                + (publicOrigin.map { " (its public origin is \($0))" } ?? ""))
        }
        guard let session, let actor = actor(fromSession: session, now: now) else {
            return .refused(status: 401, reason: "sign in with the operator token (DBQ_DASHBOARD_TOKEN) to act")
        }
        guard let csrf, Self.constantTimeEqual(csrf, self.csrf(forSession: session)) else {
            return .refused(status: 403, reason: "the form's CSRF value is missing or wrong: reload the page and try again")
        }
        return .allowed(actor: actor)
    }
}
