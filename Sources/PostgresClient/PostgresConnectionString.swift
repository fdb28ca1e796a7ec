import CLibpq
import DBQSupport

/// A libpq connection string (`postgresql://user:pw@host:port/db?…` or
/// `host=… dbname=…`), checked by libpq's own parser without connecting.
public struct PostgresConnectionString: Sendable, Equatable, CustomStringConvertible {
    /// The string as given: it may hold a password, so never print it; use `description`.
    public let raw: String
    /// The parsed keywords with values, as libpq understands them.
    public let options: [String: String]

    public init(_ raw: String) throws(PostgresError) {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else {
            throw PostgresError(code: .invalidConnectionString, message: "it is empty (expected postgresql://user@host:port/database)")
        }
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(trimmed, &errorMessage) else {
            var reason = "libpq cannot parse it"
            if let errorMessage {
                reason = String(cString: errorMessage).trimmingCharacters(in: .whitespacesAndNewlines)
                PQfreemem(errorMessage)
            }
            throw PostgresError(
                code: .invalidConnectionString,
                message: Redaction.scrub("\(reason) (expected postgresql://user@host:port/database or 'host=… dbname=…')",
                                         secrets: Self.passwordGuess(trimmed)))
        }
        defer { PQconninfoFree(parsed) }
        var options: [String: String] = [:]
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { options[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        if let port = options["port"], !port.split(separator: ",").allSatisfy({ Int($0).map { (1...65535).contains($0) } ?? false }) {
            throw PostgresError(code: .invalidConnectionString, message: "port '\(port)' is not a number from 1 to 65535")
        }
        self.raw = trimmed
        self.options = options
    }

    public var host: String { options["host"] ?? options["hostaddr"] ?? "localhost" }
    public var port: String { options["port"] ?? "5432" }
    public var user: String? { options["user"] }
    public var database: String? { options["dbname"] }
    public var password: String? { options["password"] }

    /// `host:port`, for messages.
    public var endpoint: String { host.hasPrefix("/") ? "\(host)/.s.PGSQL.\(port)" : "\(host):\(port)" }

    /// The connection as a URL without its password: safe to print.
    public var description: String {
        var text = "postgresql://"
        if let user { text += user + (password != nil ? ":***" : "") + "@" }
        text += host.hasPrefix("/") ? "" : host
        text += ":\(port)/\(database ?? "")"
        if host.hasPrefix("/") { text += "?host=\(host)" }
        return text
    }

    /// The same server with another database: for scratch databases and admin work.
    public func replacingDatabase(_ database: String) -> String {
        var keywords: [String] = []
        for (key, value) in options.sorted(by: { $0.key < $1.key }) where key != "dbname" {
            keywords.append("\(key)=\(Self.quoteValue(value))")
        }
        keywords.append("dbname=\(Self.quoteValue(database))")
        return keywords.joined(separator: " ")
    }

    /// A keyword string for a child process (`pg_dump --dbname=…`) without the password,
    /// which goes in `PGPASSWORD` instead: command lines are visible to every user of the
    /// machine. `database` replaces the database if given.
    public func childProcessArguments(database: String? = nil) -> (conninfo: String, environment: [String: String]) {
        var keywords: [String] = []
        for (key, value) in options.sorted(by: { $0.key < $1.key }) where key != "password" && !(database != nil && key == "dbname") {
            keywords.append("\(key)=\(Self.quoteValue(value))")
        }
        if let database { keywords.append("dbname=\(Self.quoteValue(database))") }
        var environment: [String: String] = [:]
        if let password { environment["PGPASSWORD"] = password }
        return (keywords.joined(separator: " "), environment)
    }

    public static func quoteValue(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// What may be a password in a string libpq could not parse, so it can be scrubbed
    /// from the message all the same.
    static func passwordGuess(_ raw: String) -> [String] {
        var secrets: [String] = []
        if let schemeEnd = raw.range(of: "://"), let at = raw[schemeEnd.upperBound...].firstIndex(of: "@") {
            let userInfo = raw[schemeEnd.upperBound..<at]
            if let colon = userInfo.firstIndex(of: ":") { secrets.append(String(userInfo[userInfo.index(after: colon)...])) }
        }
        if let range = raw.range(of: "password=") {
            let rest = raw[range.upperBound...]
            secrets.append(String(rest.prefix(while: { $0 != " " && $0 != "&" })))
        }
        return secrets.filter { !$0.isEmpty }
    }
}

import Foundation
