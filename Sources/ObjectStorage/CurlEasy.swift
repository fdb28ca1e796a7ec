import CCurl
import Foundation

/// A request for `CurlEasy`.
struct HTTPRequest: Sendable {
    var method: String
    var url: String
    var headers: [(String, String)]
    var body: [UInt8] = []
    /// How long to wait for the TCP connection.
    var connectTimeout: Duration = .seconds(10)
    /// A transfer slower than 1 KiB/s for this long is abandoned as stalled.
    var stallTimeout: Duration = .seconds(30)
}

/// A response read whole into memory (S3 bodies here are XML or one bounded range).
struct HTTPResponse: Sendable {
    var status: Int
    /// Header names lower-cased; the last value wins.
    var headers: [String: String]
    var body: [UInt8]
}

/// A transport failure: no HTTP response was received.
struct CurlError: Error, Sendable {
    var code: Int
    var message: String
    /// Worth another try: refused or reset connections, timeouts, partial transfers.
    var isRetryable: Bool
}

/// One libcurl easy handle. Owned by exactly one `CurlPool` slot and used only on that
/// slot's lane, so the handle is never touched by two threads at once. Reusing the
/// handle keeps its connections alive between requests.
final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    init() {
        _ = CurlGlobal.initialized
        guard let handle = curl_easy_init() else { fatalError("curl_easy_init failed: out of memory") }
        self.handle = handle
    }

    deinit { curl_easy_cleanup(handle) }

    func perform(_ request: HTTPRequest) throws(CurlError) -> HTTPResponse {
        curl_easy_reset(handle)
        let exchange = Exchange(body: request.body, reservesBody: request.method != "HEAD")
        let userdata = Unmanaged.passUnretained(exchange).toOpaque()
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        // No "Expect: 100-continue" round trip before each part.
        headerList = curl_slist_append(headerList, "Expect:")

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errors in
            CCurl_setopt_string(handle, CURLOPT_URL, request.url)
            CCurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            CCurl_setopt_long(handle, CURLOPT_HTTP_VERSION, CCurl_HTTP_VERSION_1_1)
            CCurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout.milliseconds))
            CCurl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1024)
            CCurl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.stallTimeout.seconds)))
            CCurl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
            CCurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errors.baseAddress)
            CCurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
            CCurl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, curlWrite)
            CCurl_setopt_pointer(handle, CURLOPT_WRITEDATA, userdata)
            CCurl_setopt_callback(handle, CURLOPT_HEADERFUNCTION, curlHeader)
            CCurl_setopt_pointer(handle, CURLOPT_HEADERDATA, userdata)
            switch request.method {
            case "HEAD":
                CCurl_setopt_long(handle, CURLOPT_NOBODY, 1)
            case "GET":
                CCurl_setopt_long(handle, CURLOPT_HTTPGET, 1)
            case "PUT", "POST":
                CCurl_setopt_long(handle, CURLOPT_UPLOAD, 1)
                CCurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
                CCurl_setopt_callback(handle, CURLOPT_READFUNCTION, curlRead)
                CCurl_setopt_pointer(handle, CURLOPT_READDATA, userdata)
                CCurl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.count))
            default:
                CCurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            }
            return withExtendedLifetime(exchange) { curl_easy_perform(handle) }
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let summary = String(cString: curl_easy_strerror(code))
            throw CurlError(code: Int(code.rawValue), message: detail.isEmpty ? summary : detail, isRetryable: Self.retryable(code))
        }
        var status = 0
        CCurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: exchange.headers, body: exchange.received)
    }

    /// One message over SMTP (`smtp://` with STARTTLS when the server offers it, required
    /// when `requireTLS`; `smtps://` is TLS from the start): the envelope's sender and
    /// recipients, then `message` (headers, a blank line, the body; CRLF line ends).
    func sendMail(url: String, from: String, recipients: [String], message: [UInt8], username: String?, password: String?,
                  requireTLS: Bool, timeout: Duration) throws(CurlError) {
        curl_easy_reset(handle)
        let exchange = Exchange(body: message, reservesBody: false)
        let userdata = Unmanaged.passUnretained(exchange).toOpaque()
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var rcpt: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(rcpt) }
        for recipient in recipients { rcpt = curl_slist_append(rcpt, "<\(recipient)>") }
        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errors in
            CCurl_setopt_string(handle, CURLOPT_URL, url)
            CCurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            CCurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(timeout.milliseconds))
            CCurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout.milliseconds) * 3)
            CCurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errors.baseAddress)
            CCurl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(from)>")
            CCurl_setopt_slist(handle, CURLOPT_MAIL_RCPT, rcpt)
            CCurl_setopt_long(handle, CURLOPT_USE_SSL, Int(requireTLS ? CURLUSESSL_ALL.rawValue : CURLUSESSL_TRY.rawValue))
            if let username { CCurl_setopt_string(handle, CURLOPT_USERNAME, username) }
            if let password { CCurl_setopt_string(handle, CURLOPT_PASSWORD, password) }
            CCurl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            CCurl_setopt_callback(handle, CURLOPT_READFUNCTION, curlRead)
            CCurl_setopt_pointer(handle, CURLOPT_READDATA, userdata)
            CCurl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(message.count))
            return withExtendedLifetime(exchange) { curl_easy_perform(handle) }
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let summary = String(cString: curl_easy_strerror(code))
            throw CurlError(code: Int(code.rawValue), message: detail.isEmpty ? summary : detail, isRetryable: Self.retryable(code))
        }
    }

    private static func retryable(_ code: CURLcode) -> Bool {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
             CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST, CURLE_SSL_CONNECT_ERROR,
             CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_READ_ERROR:
            return true
        default:
            return false
        }
    }
}

/// The state one transfer's callbacks share: the body going out, what came back.
private final class Exchange {
    let body: [UInt8]
    /// Make room for the whole body when its length is announced: a ranged GET's body
    /// then takes its size once, not up to twice that while an array grows by doubling.
    let reservesBody: Bool
    var sent = 0
    var received: [UInt8] = []
    var headers: [String: String] = [:]

    init(body: [UInt8], reservesBody: Bool) {
        self.body = body
        self.reservesBody = reservesBody
    }
}

private let curlWrite: CCurl_data_callback = { buffer, size, count, userdata in
    let exchange = Unmanaged<Exchange>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if n > 0, let buffer {
        buffer.withMemoryRebound(to: UInt8.self, capacity: n) { exchange.received.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
    }
    return n
}

private let curlRead: CCurl_data_callback = { buffer, size, count, userdata in
    let exchange = Unmanaged<Exchange>.fromOpaque(userdata!).takeUnretainedValue()
    let n = min(size * count, exchange.body.count - exchange.sent)
    if n > 0, let buffer {
        exchange.body.withUnsafeBufferPointer { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + exchange.sent, byteCount: n)
        }
        exchange.sent += n
    }
    return n
}

private let curlHeader: CCurl_data_callback = { buffer, size, count, userdata in
    let exchange = Unmanaged<Exchange>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    guard n > 0, let buffer else { return n }
    let line = buffer.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
    if line.hasPrefix("HTTP/") {
        exchange.headers = [:]  // a new response (after a redirect or 100 Continue)
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        exchange.headers[name] = value
        if name == "content-length", exchange.reservesBody, exchange.received.isEmpty, let length = Int(value), length > 0 {
            exchange.received.reserveCapacity(min(length, 64 << 20))
        }
    }
    return n
}

/// `curl_global_init` once per process, before the first handle.
enum CurlGlobal {
    static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()
}
