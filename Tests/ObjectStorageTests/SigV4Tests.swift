import Foundation
@testable import ObjectStorage
import Testing

/// The published vectors: the AWS SigV4 test suite (service "service") and the worked
/// examples of the S3 API reference (service "s3").
@Suite("SigV4 signer")
struct SigV4Tests {
    // The SigV4 test suite: AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, "service".
    let suite = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)
    let suiteHeaders = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]

    @Test("test suite: the derived signing key")
    func signingKey() {
        let key = suite.signingKey(day: "20150830").withUnsafeBytes { Array($0) }
        #expect(SigV4Signer.hex(key) == "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75")
    }

    @Test("test suite vectors", arguments: [
        ("get-vanilla", "GET", "/", [], "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("get-vanilla-query-order-key-case", "GET", "/", [("Param2", "value2"), ("Param1", "value1")],
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("post-vanilla", "POST", "/", [], "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("get-utf8", "GET", SigV4Signer.uriEncode("/ሴ", keepSlash: true), [],
         "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ] as [(String, String, String, [(String, String)], String)])
    func suiteVector(name: String, method: String, path: String, query: [(String, String)], expected: String) {
        let signed = suite.signature(method: method, canonicalPath: path, query: query, headers: suiteHeaders,
                                     payloadHash: SigV4Signer.emptyPayloadHash, date: suiteDate)
        #expect(signed.signature == expected, "\(name)\n\(signed.canonicalRequest)")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=\(expected)")
    }

    @Test("test suite: the canonical request and string to sign of get-vanilla")
    func canonicalForms() {
        let signed = suite.signature(method: "GET", canonicalPath: "/", query: [], headers: suiteHeaders,
                                     payloadHash: SigV4Signer.emptyPayloadHash, date: suiteDate)
        #expect(signed.canonicalRequest == "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(signed.stringToSign == "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
    }

    // The S3 API reference examples: AKIAIOSFODNN7EXAMPLE, 2013-05-24T00:00:00Z, us-east-1, "s3".
    let s3 = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    let s3Date = Date(timeIntervalSince1970: 1_369_353_600)
    let host = ("Host", "examplebucket.s3.amazonaws.com")

    func s3Signature(_ method: String, _ path: String, query: [(String, String)] = [], headers: [(String, String)] = [], payload: String) -> String {
        let all = [host] + headers + [("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", payload)]
        return s3.signature(method: method, canonicalPath: path, query: query, headers: all, payloadHash: payload, date: s3Date).signature
    }

    @Test("S3 example: GET object with a range")
    func s3GetObject() {
        #expect(s3Signature("GET", "/test.txt", headers: [("Range", "bytes=0-9")], payload: SigV4Signer.emptyPayloadHash)
            == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test("S3 example: PUT object, a key with '$' and a signed payload")
    func s3PutObject() {
        let payload = SigV4Signer.payloadHash(Array("Welcome to Amazon S3.".utf8))
        #expect(payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let path = "/" + SigV4Signer.uriEncode("test$file.text", keepSlash: true)
        #expect(path == "/test%24file.text")
        #expect(s3Signature("PUT", path, headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")], payload: payload)
            == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test("S3 example: GET bucket lifecycle (a query parameter without value)")
    func s3Lifecycle() {
        #expect(s3Signature("GET", "/", query: [("lifecycle", "")], payload: SigV4Signer.emptyPayloadHash)
            == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test("S3 example: list objects (query sorted)")
    func s3List() {
        #expect(s3Signature("GET", "/", query: [("prefix", "J"), ("max-keys", "2")], payload: SigV4Signer.emptyPayloadHash)
            == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test("URI encoding keeps only unreserved characters", arguments: [
        ("a b", false, "a%20b"), ("a+b", false, "a%2Bb"), ("100%", false, "100%25"),
        ("a/b", true, "a/b"), ("a/b", false, "a%2Fb"), ("A-z_0.9~", false, "A-z_0.9~"),
        ("=&?#", false, "%3D%26%3F%23"), ("ключ", false, "%D0%BA%D0%BB%D1%8E%D1%87"), ("!'()*", false, "%21%27%28%29%2A"),
    ])
    func encoding(input: String, keepSlash: Bool, expected: String) {
        #expect(SigV4Signer.uriEncode(input, keepSlash: keepSlash) == expected)
    }

    @Test("multipart queries: a bare name gets '=' and values are encoded")
    func multipartQuery() {
        #expect(SigV4Signer.canonicalQuery([("uploads", "")]) == "uploads=")
        #expect(SigV4Signer.canonicalQuery([("uploadId", "a/b+c=="), ("partNumber", "2")]) == "partNumber=2&uploadId=a%2Fb%2Bc%3D%3D")
    }

    @Test("header values are trimmed and inner runs of spaces folded")
    func headerTrim() {
        #expect(SigV4Signer.trimmedHeaderValue("  a   b \t c  ") == "a b c")
    }

    @Test("session credentials sign x-amz-security-token")
    func sessionToken() {
        let signer = SigV4Signer(credentials: AWSCredentials(accessKeyID: "AK", secretAccessKey: "SK", sessionToken: "TOKEN"), region: "eu-west-1")
        let headers = signer.signedHeaders(method: "GET", canonicalPath: "/b/k", query: [], headers: [("host", "h")],
                                           payloadHash: SigV4Signer.emptyPayloadHash, date: s3Date)
        #expect(headers.contains { $0.0 == "x-amz-security-token" && $0.1 == "TOKEN" })
        let authorization = headers.first { $0.0 == "Authorization" }!.1
        #expect(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"))
        #expect(authorization.contains("/eu-west-1/s3/aws4_request"))
    }

    @Test("credentials never print their secret")
    func credentialsRedacted() {
        let c = AWSCredentials(accessKeyID: "AK", secretAccessKey: "very-secret", sessionToken: "tok")
        #expect(!c.description.contains("very-secret"))
        #expect(!c.description.contains("tok)"))
    }
}
