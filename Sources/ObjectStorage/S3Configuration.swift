import DBQSupport

/// Where an S3 store is and how to talk to it.
public struct S3Configuration: Sendable {
    /// Path-style (`http://host/bucket/key`) or virtual-hosted (`http://bucket.host/key`).
    public enum Addressing: String, Sendable, CaseIterable { case path, virtualHosted = "virtual" }

    /// `scheme://host[:port]` of the S3 API. Nil means AWS: `https://s3.<region>.amazonaws.com`.
    public var endpoint: String?
    public var region: String
    public var bucket: String
    /// Keys are stored under this prefix (no leading or trailing `/`).
    public var prefix: String
    /// Nil picks virtual-hosted for AWS and path-style for any other endpoint.
    public var addressing: Addressing?
    public var credentials: AWSCredentials
    /// Size of each multipart part: at least 5 MiB; a stream may have 10,000 parts.
    public var partSize: Int
    /// Parts held in memory at once, uploading or being filled: memory is
    /// `partSize × partConcurrency`; up to that many upload together when S3 is the slower.
    public var partConcurrency: Int
    /// Bytes fetched per ranged GET when reading (5 MiB by default; a reader holds the
    /// range being consumed and the next one in flight).
    public var readChunkSize: Int
    /// Attempts per request, retries included.
    public var maxAttempts: Int
    public var backoff: Backoff
    public var connectTimeout: Duration
    /// S3 server-side encryption asked on every PUT and multipart upload: `AES256`, or
    /// `aws:kms` with a key id (nil: the bucket's default).
    public var serverSideEncryption: ServerSideEncryption?

    public struct ServerSideEncryption: Sendable, Equatable {
        public var mode: String
        public var kmsKeyID: String?
        public init(mode: String, kmsKeyID: String? = nil) {
            self.mode = mode
            self.kmsKeyID = kmsKeyID
        }
        /// The request headers that ask for it.
        public var headers: [(String, String)] {
            [("x-amz-server-side-encryption", mode)] + (kmsKeyID.map { [("x-amz-server-side-encryption-aws-kms-key-id", $0)] } ?? [])
        }
    }

    public static let minimumPartSize = 5 << 20
    /// The first parts' size by default: S3's minimum. With two parts held (one uploading
    /// while the next fills) an upload holds 10 MiB, so a worker streaming a backup stays
    /// well under 64 MiB.
    public static let defaultPartSize = minimumPartSize
    public static let maximumPartSize = 5 << 30
    public static let maximumParts = 10_000
    /// Parts of one size before the size doubles: a stream of unknown length starts
    /// small (flat memory for ordinary databases) and can still reach about 4.9 TiB from
    /// 5 MiB parts (S3 allows 5 TiB).
    public static let partsPerSizeStep = 1_000

    /// The size of part `number` (1-based) of a stream whose first parts are `base`
    /// bytes: `base` doubled every `partsPerSizeStep` parts, at most 5 GiB.
    public static func partSize(forPart number: Int, base: Int) -> Int {
        let step = max(0, number - 1) / partsPerSizeStep
        guard step < 30 else { return maximumPartSize }
        return min(maximumPartSize, base << step)
    }

    public init(
        endpoint: String? = nil, region: String = "us-east-1", bucket: String, prefix: String = "",
        addressing: Addressing? = nil, credentials: AWSCredentials, partSize: Int = defaultPartSize,
        partConcurrency: Int = 2, readChunkSize: Int = defaultPartSize, maxAttempts: Int = 5,
        backoff: Backoff = Backoff(base: .milliseconds(100), cap: .seconds(5)), connectTimeout: Duration = .seconds(10)
    ) {
        self.endpoint = endpoint
        self.region = region
        self.bucket = bucket
        self.prefix = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.addressing = addressing
        self.credentials = credentials
        self.partSize = partSize
        self.partConcurrency = partConcurrency
        self.readChunkSize = readChunkSize
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.connectTimeout = connectTimeout
    }

    /// `s3://bucket/prefix`, for messages.
    public var url: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)") }

    /// Checks the settings; each problem is named.
    public func validate() throws(ObjectStoreError) {
        func bad(_ message: String) -> ObjectStoreError { ObjectStoreError(code: .configuration, message: message, store: url) }
        let bucketOK = (3...63).contains(bucket.count)
            && bucket.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "." }
            && bucket.first!.isASCII && (bucket.first!.isLetter || bucket.first!.isNumber)
        if !bucketOK {
            throw bad("bucket name '\(bucket)' is not valid: 3 to 63 lower-case letters, digits, '.' and '-', starting with a letter or digit")
        }
        if partSize < Self.minimumPartSize || partSize > Self.maximumPartSize {
            throw bad("part size \(partSize) bytes is outside S3's limits (5 MiB to 5 GiB)")
        }
        if partConcurrency < 1 || partConcurrency > 64 { throw bad("part concurrency \(partConcurrency) must be from 1 to 64") }
        if maxAttempts < 1 { throw bad("max attempts must be at least 1") }
        if region.isEmpty { throw bad("region is empty") }
        if let endpoint {
            _ = try Endpoint(endpoint, store: url)
        }
    }
}

/// A parsed `scheme://host[:port]`.
struct Endpoint: Sendable {
    var scheme: String
    var host: String
    var port: Int?

    init(_ text: String, store: String) throws(ObjectStoreError) {
        func bad(_ why: String) -> ObjectStoreError {
            ObjectStoreError(code: .invalidURL, message: "S3 endpoint '\(Redaction.url(text))' \(why) (expected http://host:port or https://host)", store: store)
        }
        guard let schemeEnd = text.range(of: "://") else { throw bad("has no scheme") }
        scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw bad("must use http or https") }
        var authority = String(text[schemeEnd.upperBound...])
        while authority.hasSuffix("/") { authority.removeLast() }
        if authority.contains("/") || authority.contains("?") { throw bad("must not have a path or query") }
        if authority.contains("@") { throw bad("must not hold credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") }
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw bad("has a port that is not a number from 1 to 65535")
            }
            port = p
            host = String(authority[..<colon])
        } else {
            host = authority
        }
        if host.isEmpty { throw bad("has no host") }
    }

    /// `host` or `host:port` as sent in the Host header.
    var hostHeader: String {
        guard let port else { return host }
        if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) { return host }
        return "\(host):\(port)"
    }
}

import Foundation
