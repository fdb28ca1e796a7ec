import Crypto
import Foundation

/// AWS credentials. `description` never shows the secret.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> AWSCredentials? {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
              let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else { return nil }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    public var description: String { "AWSCredentials(\(accessKeyID), secret: ***\(sessionToken != nil ? ", session token: ***" : ""))" }
}

/// AWS Signature Version 4 for requests signed in the `Authorization` header.
///
/// Pure: the time is a parameter. The canonical path is given already URI-encoded (S3
/// encodes each key once and does not normalise), query values are given raw and
/// encoded here.
public struct SigV4Signer: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The SHA-256 of an empty body, hex.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// What a signature is computed over, kept for tests and debugging.
    public struct Signature: Sendable, Equatable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        public var signature: String
        public var authorization: String
    }

    /// Signs a request. `headers` must include `host` and whatever else is to be signed;
    /// `x-amz-date` (and `x-amz-security-token` for session credentials) are added by
    /// `signedHeaders(…)`, not here.
    public func signature(
        method: String, canonicalPath: String, query: [(String, String)], headers: [(String, String)],
        payloadHash: String, date: Date
    ) -> Signature {
        let (amzDate, day) = Self.timestamps(date)
        var grouped: [String: [String]] = [:]
        for (name, value) in headers {
            grouped[name.lowercased(), default: []].append(Self.trimmedHeaderValue(value))
        }
        let names = grouped.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(grouped[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalQuery = Self.canonicalQuery(query)
        let canonicalRequest = [method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        let key = signingKey(day: day)
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signedHeaders: signedHeaders,
                         signature: signature, authorization: authorization)
    }

    /// The headers to send: the caller's, plus `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` when there is one, and `Authorization`.
    public func signedHeaders(
        method: String, canonicalPath: String, query: [(String, String)], headers: [(String, String)],
        payloadHash: String, date: Date
    ) -> [(String, String)] {
        var all = headers
        all.append(("x-amz-date", Self.timestamps(date).amzDate))
        all.append(("x-amz-content-sha256", payloadHash))
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }
        let signed = signature(method: method, canonicalPath: canonicalPath, query: query, headers: all, payloadHash: payloadHash, date: date)
        all.append(("Authorization", signed.authorization))
        return all
    }

    /// The key derived from the secret for one day, region and service.
    public func signingKey(day: String) -> SymmetricKey {
        func hmac(_ key: [UInt8], _ data: String) -> [UInt8] {
            Array(HMAC<SHA256>.authenticationCode(for: Array(data.utf8), using: SymmetricKey(data: key)))
        }
        let kDate = hmac(Array("AWS4\(credentials.secretAccessKey)".utf8), day)
        let kRegion = hmac(kDate, region)
        let kService = hmac(kRegion, service)
        return SymmetricKey(data: hmac(kService, "aws4_request"))
    }

    /// `20150830T123600Z` and `20150830`, in UTC.
    public static func timestamps(_ date: Date) -> (amzDate: String, day: String) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let day = pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2)
        return (day + "T" + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2) + "Z", day)
    }

    /// Query parameters encoded and sorted by name, then value.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map {
            (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false))
        }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
    }

    /// AWS's URI encoding: every byte but `A–Z a–z 0–9 - . _ ~` as `%XX` (upper-case hex);
    /// `/` kept when `keepSlash` (object key paths).
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// Lower-case hex of a digest.
    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The hex SHA-256 of `bytes`.
    public static func payloadHash(_ bytes: some ContiguousBytes) -> String {
        bytes.withUnsafeBytes { hex(SHA256.hash(data: $0)) }
    }

    static func trimmedHeaderValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }
}
