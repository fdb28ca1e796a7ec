/// Where and how to connect to Redis, parsed from `redis://[user:password@]host:port[/db]`,
/// or for a Redis Cluster from `redis+cluster://[user:password@]host:port[,host:port…]`
/// (seed nodes: any reachable one gives the slot map).
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// A cluster's seed nodes (`host`/`port` is the first); empty for a single Redis.
    public var seeds: [String] = []
    public var isCluster: Bool { !seeds.isEmpty }
    public var username: String?
    public var password: String?
    public var database: Int
    public var connectTimeout: Duration
    /// How long a non-blocking command may wait for its reply.
    public var commandTimeout: Duration

    public init(
        host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
        database: Int = 0, connectTimeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// `host:port`, for messages.
    public var endpoint: String { Self.endpoint(host: host, port: port) }

    public static func endpoint(host: String, port: Int) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// This configuration aimed at one node of a cluster (`host:port`, as a slot map names it).
    public func node(_ endpoint: String) -> RedisConfiguration {
        var c = self
        c.seeds = []
        if endpoint.hasPrefix("["), let close = endpoint.firstIndex(of: "]") {
            c.host = String(endpoint[endpoint.index(after: endpoint.startIndex)..<close])
            c.port = Int(endpoint[endpoint.index(after: close)...].dropFirst()) ?? port
        } else if let colon = endpoint.lastIndex(of: ":") {
            c.host = String(endpoint[..<colon])
            c.port = Int(endpoint[endpoint.index(after: colon)...]) ?? port
        }
        return c
    }

    /// The URL this configuration parses from, password included (for a child process's
    /// environment; never for output: see `redactedURL`).
    public var url: String {
        func encoded(_ s: String) -> String {
            var allowed = CharacterSet.urlUserAllowed
            allowed.remove(charactersIn: ":@")
            return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
        }
        var auth = ""
        if username != nil || password != nil {
            auth = (username.map(encoded) ?? "") + (password.map { ":" + encoded($0) } ?? "") + "@"
        }
        if isCluster { return "redis+cluster://\(auth)\(seeds.joined(separator: ","))" }
        return "redis://\(auth)\(endpoint)/\(database)"
    }

    /// The URL with the password masked.
    public var redactedURL: String {
        var auth = ""
        if username != nil || password != nil {
            auth = (username ?? "") + (password != nil ? ":***" : "") + "@"
        }
        if isCluster { return "redis+cluster://\(auth)\(seeds.joined(separator: ","))" }
        return "redis://\(auth)\(endpoint)/\(database)"
    }

    /// Parses a Redis URL. Every rejection names what is wrong and what was expected.
    public init(url: String) throws(RedisError) {
        func bad(_ why: String) -> RedisError {
            RedisError(code: .invalidURL, message: "\(why) (expected redis://[user:password@]host:port[/db], or redis+cluster://[user:password@]host:port[,host:port…] for a Redis Cluster)")
        }
        self.init()
        let trimmed = url.trimmingCharacters(in: .whitespaces)
        guard let schemeEnd = trimmed.range(of: "://") else {
            throw bad("'\(RedisConfiguration.redact(trimmed))' has no scheme")
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        if scheme == "rediss" {
            throw RedisError(
                code: .invalidURL,
                message: "rediss:// (TLS) is not supported by the hiredis library on this system; reach TLS Redis through a local tunnel (stunnel) and use redis://")
        }
        guard scheme == "redis" || scheme == "redis+cluster" else { throw bad("scheme '\(scheme)' is not redis or redis+cluster") }
        let cluster = scheme == "redis+cluster"
        var rest = trimmed[schemeEnd.upperBound...]
        if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            throw bad("query and fragment ('\(rest[q...])') are not supported")
        }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = String(userInfo[..<colon])
                username = user.isEmpty ? nil : try Self.percentDecoded(user, what: "user name")
                password = try Self.percentDecoded(String(userInfo[userInfo.index(after: colon)...]), what: "password")
            } else if !userInfo.isEmpty {
                // redis://secret@host is the common form for a password alone.
                password = try Self.percentDecoded(String(userInfo), what: "password")
            }
        }
        if cluster {
            if !path.isEmpty && path != "0" { throw bad("a Redis Cluster has only database 0, not '\(path)'") }
            let nodes = rest.split(separator: ",", omittingEmptySubsequences: false)
            guard !nodes.isEmpty, nodes.allSatisfy({ !$0.isEmpty }) else { throw bad("give the cluster's seed nodes as host:port,host:port") }
            var parsed: [String] = []
            for node in nodes {
                let one = try RedisConfiguration(url: "redis://" + node)
                parsed.append(one.endpoint)
                if parsed.count == 1 { host = one.host; port = one.port }
            }
            seeds = parsed
            return
        }
        var hostPart = rest
        var portPart: Substring? = nil
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw bad("IPv6 address is missing ']'") }
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty { throw bad("unexpected '\(after)' after the IPv6 address") }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty else { throw bad("host is missing") }
        guard hostPart.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" || $0 == ":" }) else {
            throw bad("host '\(hostPart)' has characters a host name cannot have")
        }
        host = String(hostPart)
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else {
                throw bad("port '\(portPart)' is not a number from 1 to 65535")
            }
            port = p
        }
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else { throw bad("database '\(path)' is not a non-negative number") }
            database = db
        }
    }

    private static func percentDecoded(_ s: String, what: String) throws(RedisError) -> String {
        guard let decoded = s.removingPercentEncoding else {
            throw RedisError(code: .invalidURL, message: "the \(what) has a malformed %-escape")
        }
        return decoded
    }

    private static func redact(_ s: String) -> String {
        s.contains("@") ? "<url with credentials>" : s
    }
}

import Foundation
