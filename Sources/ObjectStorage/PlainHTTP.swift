import Foundation

/// One HTTP request outside the object store — a readiness probe, a webhook: a handle of
/// its own, nothing signed, the response read whole.
public enum PlainHTTP {
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// No HTTP response came back (refused, timed out, a name that does not resolve).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public static func send(_ method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8] = [],
                            timeout: Duration = .seconds(5)) throws(Failure) -> Response {
        do {
            let response = try CurlEasy().perform(HTTPRequest(method: method, url: url, headers: headers, body: body,
                                                              connectTimeout: timeout, stallTimeout: timeout))
            return Response(status: response.status, body: response.body)
        } catch {
            throw Failure(description: "\(url): \(error.message)")
        }
    }
}

/// One e-mail through an SMTP server, by libcurl (STARTTLS as the URL and `requireTLS` say).
public enum SMTPMail {
    /// `url`: `smtp://host:port` or `smtps://host:port`, with `user:password@` when the server
    /// wants a login. `message`: headers, a blank line, the body.
    public static func send(url: String, from: String, to recipients: [String], message: String, requireTLS: Bool = false,
                            timeout: Duration = .seconds(10)) throws(PlainHTTP.Failure) {
        var address = url, username: String?, password: String?
        if let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") {
            let userinfo = url[scheme.upperBound..<at]
            let parts = userinfo.split(separator: ":", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            username = parts.first
            password = parts.count > 1 ? parts[1] : nil
            address = String(url[..<scheme.upperBound]) + String(url[url.index(after: at)...])
        }
        let crlf = message.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
        do {
            try CurlEasy().sendMail(url: address, from: from, recipients: recipients, message: Array(crlf.utf8), username: username, password: password,
                                    requireTLS: requireTLS, timeout: timeout)
        } catch {
            throw PlainHTTP.Failure(description: "\(address): \(error.message)")
        }
    }
}
