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
