import DBQSupport
import Foundation
@testable import ObjectStorage
import Logging
import Testing

@Suite("Cutting a stream into parts")
struct PartSourceTests {
    func parts(_ chunkSizes: [Int], partSize: Int) async throws -> [Int] {
        let stream = ByteStream.chunks(chunkSizes.map { [UInt8](repeating: 1, count: $0) })
        var source = PartSource(iterator: stream.makeAsyncIterator(), partSize: partSize)
        var sizes: [Int] = []
        while true {
            let part = try await source.nextPart()
            if !part.isEmpty { sizes.append(part.count) }
            if !source.mayHaveMore { break }
        }
        return sizes
    }

    @Test("parts are exactly partSize but the last", arguments: [
        ([10], 4, [4, 4, 2]),
        ([4, 4], 4, [4, 4]),
        ([8], 4, [4, 4]),
        ([1, 1, 1, 1, 1], 4, [4, 1]),
        ([3], 4, [3]),
        ([], 4, []),
        ([0, 0, 4, 0], 4, [4]),
        ([7, 9, 1], 5, [5, 5, 5, 2]),
    ] as [([Int], Int, [Int])])
    func cutting(chunks: [Int], partSize: Int, expected: [Int]) async throws {
        #expect(try await parts(chunks, partSize: partSize) == expected)
    }

    @Test("a stream that ends on a part boundary is known to end before the next read")
    func exactBoundary() async throws {
        var source = PartSource(iterator: ByteStream.chunks([[1, 2, 3, 4]]).makeAsyncIterator(), partSize: 4)
        #expect(try await source.nextPart() == [1, 2, 3, 4])
        #expect(!source.mayHaveMore)
    }
}

@Suite("Storage URLs and keys")
struct StorageURLTests {
    @Test("storage URLs", arguments: [
        ("s3://bucket", StorageURL.s3(bucket: "bucket", prefix: "")),
        ("s3://bucket/a/b/", StorageURL.s3(bucket: "bucket", prefix: "a/b")),
        ("file:///var/backups", StorageURL.file(path: "/var/backups")),
    ])
    func parses(text: String, expected: StorageURL) throws {
        #expect(try StorageURL(text) == expected)
    }

    @Test("bad storage URLs are refused with a message saying what is expected", arguments: [
        "", "bucket/prefix", "s3://", "s3:///x", "file://relative/path", "http://host/x", "s3://AK:hunter2@bucket/x",
    ])
    func refuses(text: String) {
        do {
            _ = try StorageURL(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test("object URLs split into store and key")
    func split() throws {
        let (store, key) = try StorageURL.splitObject("s3://b/dir/sub/file.bin")
        #expect(store == .s3(bucket: "b", prefix: "dir/sub"))
        #expect(key == "file.bin")
        #expect(try StorageURL.splitObject("file:///tmp/x").key == "x")
        #expect(throws: ObjectStoreError.self) { try StorageURL.splitObject("s3://b") }
    }

    @Test("keys that could escape a directory or confuse a URL are refused", arguments: [
        "", "/abs", "dir/", "a//b", "../etc/passwd", "a/../b", "a/./b", ".", "ctl\u{1}x", String(repeating: "k", count: 1025),
    ])
    func badKeys(key: String) {
        #expect(throws: ObjectStoreError.self) { try ObjectKey.validate(key, store: "test") }
    }

    @Test("S3 settings are checked", arguments: [
        ("Bad_Bucket", 16 << 20, "bucket name"),
        ("ok-bucket", 1 << 20, "part size"),
        ("ok-bucket", 6 << 30, "part size"),
    ])
    func configuration(bucket: String, partSize: Int, fragment: String) {
        let c = S3Configuration(bucket: bucket, credentials: AWSCredentials(accessKeyID: "a", secretAccessKey: "b"), partSize: partSize)
        do {
            try c.validate()
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains(fragment))
        }
    }

    @Test("S3 endpoints", arguments: ["ftp://h", "http://", "http://h:0", "http://h:x", "http://user:pw@h", "http://h/path"])
    func badEndpoints(endpoint: String) {
        #expect(throws: ObjectStoreError.self) { try Endpoint(endpoint, store: "s3://b") }
    }

    @Test("which S3 answers are retried", arguments: [
        (500, nil, true), (503, "SlowDown", true), (429, nil, true), (400, "RequestTimeout", true),
        (403, "SignatureDoesNotMatch", false), (404, "NoSuchKey", false), (400, "InvalidArgument", false),
    ] as [(Int, String?, Bool)])
    func retryable(status: Int, code: String?, expected: Bool) {
        #expect(S3Store.isRetryable(status: status, s3Code: code) == expected)
    }

    @Test("path-style and virtual-hosted addressing, and the AWS default endpoint")
    func addressing() throws {
        let credentials = AWSCredentials(accessKeyID: "a", secretAccessKey: "b")
        let logger = Logger(label: "t")
        let path = try S3Store(S3Configuration(endpoint: "http://127.0.0.1:9000", bucket: "bkt", prefix: "p/q", credentials: credentials), logger: logger)
        #expect(path.address(key: "a b/c+d", query: []) == ("127.0.0.1:9000", "/bkt/p/q/a%20b/c%2Bd", "http://127.0.0.1:9000/bkt/p/q/a%20b/c%2Bd"))
        let virtual = try S3Store(S3Configuration(endpoint: "https://s3.example.com", bucket: "bkt", addressing: .virtualHosted, credentials: credentials), logger: logger)
        #expect(virtual.address(key: "k", query: [("uploads", "")]) == ("bkt.s3.example.com", "/k", "https://bkt.s3.example.com/k?uploads="))
        let aws = try S3Store(S3Configuration(region: "eu-west-1", bucket: "bkt", credentials: credentials), logger: logger)
        #expect(aws.address(key: nil, query: [("list-type", "2")]).url == "https://bkt.s3.eu-west-1.amazonaws.com/?list-type=2")
    }

    @Test("S3 XML replies parse into a small tree")
    func xml() throws {
        let body = Array("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone &amp; lost</Message><RequestId>R1</RequestId></Error>".utf8)
        let root = try #require(XMLNode.parse(body))
        #expect(root.name == "Error")
        #expect(root["Code"] == "NoSuchKey")
        #expect(root["Message"] == "gone & lost")
        #expect(XMLNode.parse(Array("not xml <".utf8)) == nil)
    }

    @Test("Last-Modified dates (IMF-fixdate) parse without a DateFormatter", arguments: [
        ("Sun, 22 Nov 2026 06:23:42 GMT", 1_795_328_622.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Tue, 29 Feb 2028 23:59:59 GMT", 1_835_481_599),
        ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
        ("Wed, 01 Mar 2000 12:00:00 GMT", 951_912_000),
    ])
    func httpDates(text: String, seconds: Double) throws {
        #expect(try #require(S3Store.parseHTTPDate(text)).timeIntervalSince1970 == seconds)
    }

    @Test("malformed Last-Modified dates are nil, not a wrong date", arguments: [
        "", "Sun, 22 Nov 2026 06:23:42", "Sun, 22 Nov 2026 06:23:42 CET", "Sun, 22 Foo 2026 06:23:42 GMT",
        "Sun, 32 Nov 2026 06:23:42 GMT", "Sun, 22 Nov 2026 24:00:00 GMT", "Sun, 22 Nov 2026 06:23 GMT", "Sun, xx Nov 2026 06:23:42 GMT",
    ])
    func badHTTPDates(text: String) {
        #expect(S3Store.parseHTTPDate(text) == nil)
    }

    @Test("ISO 8601 dates of S3 listings, with and without fractions")
    func isoDates() throws {
        #expect(try #require(S3Store.parseISODate("2026-11-22T06:23:42.500Z")).timeIntervalSince1970 == 1_795_328_622.5)
        #expect(try #require(S3Store.parseISODate("2026-11-22T06:23:42Z")).timeIntervalSince1970 == 1_795_328_622)
        #expect(S3Store.parseISODate("22/11/2026") == nil)
    }

    @Test("uploads start at S3's minimum part size, two parts held: 10 MiB")
    func defaultPartSize() {
        #expect(S3Configuration.defaultPartSize == S3Configuration.minimumPartSize)
        #expect(S3Options().partSize == 5 << 20 && S3Options().partConcurrency == 2)
        let parts = (1...S3Configuration.maximumParts).reduce(Int64(0)) { $0 + Int64(S3Configuration.partSize(forPart: $1, base: S3Configuration.defaultPartSize)) }
        #expect(parts > 4 << 40)  // 10,000 parts reach about 4.9 TiB
    }
}
