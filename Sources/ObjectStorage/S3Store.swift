import DBQSupport
import Foundation
import Logging

/// An object store on S3 or any S3-compatible server, over libcurl with SigV4 signing.
///
/// Every request is retried with exponential backoff and full jitter on 5xx, 429,
/// `SlowDown`, `RequestTimeout`, reset or refused connections and timeouts; other
/// errors fail at once with the S3 error code and request id.
public final class S3Store: ObjectStore {
    public let configuration: S3Configuration
    let signer: SigV4Signer
    let endpoint: Endpoint
    let addressing: S3Configuration.Addressing
    let pool = CurlPool()
    let logger: Logger

    public init(_ configuration: S3Configuration, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        if let given = configuration.endpoint {
            endpoint = try Endpoint(given, store: configuration.url)
            addressing = configuration.addressing ?? .path
        } else {
            endpoint = try Endpoint("https://s3.\(configuration.region).amazonaws.com", store: configuration.url)
            addressing = configuration.addressing ?? .virtualHosted
        }
    }

    public var url: String { configuration.url }

    // MARK: - ObjectStore

    public func head(_ key: String) async throws -> ObjectInfo? {
        try ObjectKey.validate(key, store: url)
        let response = try await send("HEAD", key: key, expect: [200, 404])
        guard response.status == 200 else { return nil }
        return info(key: key, response: response, size: Int64(response.headers["content-length"] ?? "") ?? 0)
    }

    public func delete(_ key: String) async throws {
        try ObjectKey.validate(key, store: url)
        _ = try await send("DELETE", key: key, expect: [200, 204, 404])
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        var objects: [ObjectInfo] = []
        var token: String?
        let fullPrefix = storedKey(prefix, allowEmpty: true)
        repeat {
            var query = [("list-type", "2"), ("prefix", fullPrefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try await send("GET", key: nil, query: query, expect: [200])
            guard let root = XMLNode.parse(response.body), root.name == "ListBucketResult" else {
                throw ObjectStoreError(code: .server, message: "S3 list of \(url) returned a body that is not a ListBucketResult", store: url, status: response.status)
            }
            for item in root.all("Contents") {
                guard let stored = item["Key"], let key = relativeKey(stored) else { continue }
                objects.append(ObjectInfo(
                    key: key, size: Int64(item["Size"] ?? "") ?? 0, etag: item["ETag"].map(Self.unquote),
                    lastModified: item["LastModified"].flatMap(Self.parseISODate)))
            }
            token = root["IsTruncated"] == "true" ? root["NextContinuationToken"] : nil
        } while token != nil
        return objects
    }

    public func get(_ key: String) async throws -> ByteStream {
        try ObjectKey.validate(key, store: url)
        let reader = RangeReader(store: self, key: key, chunkSize: configuration.readChunkSize)
        try await reader.start()
        return ByteStream { try await reader.next() }
    }

    public func stage<S: AsyncSequence>(_ key: String, from body: S) async throws -> StagedWrite where S.Element == [UInt8] {
        try ObjectKey.validate(key, store: url)
        return try await MultipartWriter(store: self, key: key).stage(body)
    }

    // MARK: - Requests

    /// The key as stored in the bucket: under the configured prefix.
    func storedKey(_ key: String, allowEmpty: Bool = false) -> String {
        if configuration.prefix.isEmpty { return key }
        if key.isEmpty && allowEmpty { return configuration.prefix + "/" }
        return configuration.prefix + "/" + key
    }

    /// The key relative to the prefix, or nil if it lies outside.
    func relativeKey(_ stored: String) -> String? {
        if configuration.prefix.isEmpty { return stored }
        let head = configuration.prefix + "/"
        return stored.hasPrefix(head) ? String(stored.dropFirst(head.count)) : nil
    }

    /// Sends one signed request, retrying what may succeed on another try, and returns
    /// a response whose status is in `expect`; any other answer becomes an error.
    func send(
        _ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
        body: [UInt8] = [], expect: Set<Int>
    ) async throws -> HTTPResponse {
        let (host, path, requestURL) = address(key: key, query: query)
        let payloadHash = body.isEmpty ? SigV4Signer.emptyPayloadHash : SigV4Signer.payloadHash(body)
        let baseHeaders = [("host", host)] + extra

        var attempt = 0
        while true {
            attempt += 1
            let headers = signer.signedHeaders(method: method, canonicalPath: path, query: query, headers: baseHeaders,
                                               payloadHash: payloadHash, date: Date())
            let request = HTTPRequest(method: method, url: requestURL, headers: headers, body: body,
                                      connectTimeout: configuration.connectTimeout)
            let failure: ObjectStoreError
            let retryable: Bool
            do {
                let response = try await pool.perform(request)
                if expect.contains(response.status) { return response }
                failure = error(response, method: method, key: key)
                retryable = Self.isRetryable(status: response.status, s3Code: failure.s3Code)
            } catch let error as CurlError {
                failure = ObjectStoreError(
                    code: .network,
                    message: "cannot reach S3 at \(endpoint.scheme)://\(endpoint.hostHeader) for \(url): \(error.message)",
                    store: url, key: key)
                retryable = error.isRetryable
            }
            guard retryable, attempt < configuration.maxAttempts, !Task.isCancelled else {
                if attempt > 1 && retryable {
                    var exhausted = failure
                    exhausted.message += " (after \(attempt) attempts)"
                    throw exhausted
                }
                throw failure
            }
            let delay = configuration.backoff.delay(attempt: attempt - 1)
            logger.info("S3 request failed, retrying", metadata: [
                "s3.bucket": "\(configuration.bucket)", "s3.method": "\(method)", "s3.attempt": "\(attempt)",
                "s3.delay_ms": "\(delay.milliseconds)", "error": "\(failure)",
            ])
            try await Task.sleep(for: delay)
        }
    }

    /// The Host header, the canonical (encoded) path and the full URL of a request, by
    /// the addressing style: `host/bucket/key` or `bucket.host/key`.
    func address(key: String?, query: [(String, String)]) -> (host: String, path: String, url: String) {
        let encodedKey = key.map { SigV4Signer.uriEncode(storedKey($0), keepSlash: true) }
        var host = endpoint.hostHeader
        let path: String
        switch addressing {
        case .path:
            path = "/" + configuration.bucket + (encodedKey.map { "/" + $0 } ?? "")
        case .virtualHosted:
            host = configuration.bucket + "." + host
            path = "/" + (encodedKey ?? "")
        }
        let queryString = SigV4Signer.canonicalQuery(query)
        return (host, path, "\(endpoint.scheme)://\(host)\(path)" + (queryString.isEmpty ? "" : "?" + queryString))
    }

    static func isRetryable(status: Int, s3Code: String?) -> Bool {
        if status >= 500 || status == 429 { return true }
        return ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"].contains(s3Code ?? "")
    }

    /// An S3 error answer as a typed error naming the bucket, key, code and request id.
    func error(_ response: HTTPResponse, method: String, key: String?) -> ObjectStoreError {
        let root = XMLNode.parse(response.body)
        let s3Code = root?["Code"] ?? Self.statusCode(response.status)
        let s3Message = root?["Message"]
        let requestID = root?["RequestId"] ?? response.headers["x-amz-request-id"]
        let target = key.map { "\(url)/\($0)" } ?? url
        var code = ObjectStoreError.Code.server
        var message: String
        switch (response.status, s3Code) {
        case (_, "SignatureDoesNotMatch"):
            code = .accessDenied
            message = "S3 refused the request signature for \(url): the secret key does not match the access key \(configuration.credentials.accessKeyID); check AWS_SECRET_ACCESS_KEY"
        case (_, "InvalidAccessKeyId"):
            code = .accessDenied
            message = "S3 does not know the access key \(configuration.credentials.accessKeyID) used for \(url); check AWS_ACCESS_KEY_ID"
        case (403, _):
            code = .accessDenied
            message = "S3 denied \(method) on \(target)" + (s3Message.map { ": \($0)" } ?? "") + "; check the credentials and the bucket policy"
        case (_, "NoSuchBucket"):
            code = .notFound
            message = "bucket '\(configuration.bucket)' does not exist at \(endpoint.scheme)://\(endpoint.hostHeader)"
        case (404, _):
            code = .notFound
            message = "no object at \(target)"
        default:
            message = "S3 \(method) on \(target) failed with HTTP \(response.status)" + (s3Message.map { ": \($0)" } ?? "")
        }
        return ObjectStoreError(code: code, message: message, store: url, key: key, status: response.status, s3Code: s3Code, requestID: requestID)
    }

    private static func statusCode(_ status: Int) -> String? {
        switch status {
        case 403: "AccessDenied"
        case 404: "NotFound"
        case 503: "ServiceUnavailable"
        default: nil
        }
    }

    func info(key: String, response: HTTPResponse, size: Int64) -> ObjectInfo {
        ObjectInfo(key: key, size: size, etag: response.headers["etag"].map(Self.unquote),
                   lastModified: response.headers["last-modified"].flatMap(Self.parseHTTPDate))
    }

    static func unquote(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    /// `2026-11-22T06:23:42.000Z` (S3's XML listings), with or without fractional seconds.
    /// Date.ISO8601FormatStyle, not ISO8601DateFormatter: the latter loads ICU (megabytes
    /// of resident memory in every worker) for a fixed format.
    static func parseISODate(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }

    /// `Sun, 22 Nov 2026 06:23:42 GMT` (RFC 9110 IMF-fixdate, the `Last-Modified` header):
    /// split by hand and put together by the Gregorian calendar, for the same reason.
    static func parseHTTPDate(_ text: String) -> Date? {
        let fields = text.split(separator: " ")
        guard fields.count == 6, fields[5] == "GMT", let day = Int(fields[1]), let year = Int(fields[3]),
              let month = months.firstIndex(of: String(fields[2])).map({ $0 + 1 }) else { return nil }
        let time = fields[4].split(separator: ":").compactMap { Int($0) }
        guard time.count == 3, (1...31).contains(day), (0...23).contains(time[0]), (0...59).contains(time[1]), (0...60).contains(time[2]) else {
            return nil
        }
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        return utc.date(from: DateComponents(year: year, month: month, day: day, hour: time[0], minute: time[1], second: time[2]))
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
}
