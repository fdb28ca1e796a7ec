import Crypto
import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import ObjectStorage
import Synchronization
import Testing

/// The stores under test: the same suite runs against each.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case local, s3
    var testDescription: String { rawValue }

    /// A store whose objects live under a fresh prefix, so tests never see each other.
    func make(partSize: Int = 5 << 20) throws -> any ObjectStore {
        let logger = Logger(label: "test.store")
        switch self {
        case .local:
            return try LocalStore(root: TestServices.temporaryDirectory("dbq-store"))
        case .s3:
            return try S3Store(S3Configuration(
                endpoint: TestServices.s3Endpoint, bucket: TestServices.s3Bucket, prefix: "test-\(UUID().uuidString)",
                credentials: AWSCredentials(accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey),
                partSize: partSize, partConcurrency: 3), logger: logger)
        }
    }
}

func sha256(_ stream: ByteStream) async throws -> (String, Int) {
    var hash = SHA256()
    var count = 0
    for try await chunk in stream {
        hash.update(data: chunk)
        count += chunk.count
    }
    return (SigV4Signer.hex(hash.finalize()), count)
}

@Suite("Object stores, against the local directory and a real S3 server")
struct ObjectStoreSuite {
    @Test("put, head, get, list, delete", arguments: StoreKind.allCases)
    func basics(kind: StoreKind) async throws {
        let store = try kind.make()
        let bytes = Array("hello, object store".utf8)
        let info = try await store.put("a/b/hello.txt", bytes: bytes)
        #expect(info.size == Int64(bytes.count))
        #expect(try await store.head("a/b/hello.txt")?.size == Int64(bytes.count))
        #expect(try await store.getBytes("a/b/hello.txt") == bytes)
        #expect(try await store.list(prefix: "a/").map(\.key) == ["a/b/hello.txt"])
        #expect(try await store.list(prefix: "zzz").isEmpty)
        try await store.delete("a/b/hello.txt")
        #expect(try await store.head("a/b/hello.txt") == nil)
        try await store.delete("a/b/hello.txt")  // deleting what is gone is fine
    }

    @Test("keys with spaces, unicode and punctuation", arguments: StoreKind.allCases)
    func oddKeys(kind: StoreKind) async throws {
        let store = try kind.make()
        // moto's signature check mishandles '+' in keys; real S3 does not (ENVIRONMENT.md).
        for key in ["with space/file name.txt", "ünïcødé/ключ.bin", "p$u&n=c;t,(x)!'@~.dat"] {
            _ = try await store.put(key, bytes: Array(key.utf8))
            #expect(try await store.getBytes(key) == Array(key.utf8), "\(key)")
        }
        #expect(try await store.list(prefix: "").count == 3)
    }

    @Test("an empty object", arguments: StoreKind.allCases)
    func empty(kind: StoreKind) async throws {
        let store = try kind.make()
        let info = try await store.put("empty", from: ByteStream.chunks([]))
        #expect(info.size == 0)
        #expect(try await store.head("empty")?.size == 0)
        #expect(try await store.getBytes("empty") == [])
    }

    @Test("64 MiB streamed in (multipart on S3) and read back byte for byte", arguments: StoreKind.allCases)
    func large(kind: StoreKind) async throws {
        let store = try kind.make(partSize: 16 << 20)
        let size = 64 << 20
        // Chunks of an odd size so parts never line up with them.
        let (expected, _) = try await sha256(ByteStream.pattern(count: size, chunkSize: 999_983, seed: 64))
        let info = try await store.put("big.bin", from: ByteStream.pattern(count: size, chunkSize: 999_983, seed: 64))
        #expect(info.size == Int64(size))
        let (actual, count) = try await sha256(try await store.get("big.bin"))
        #expect(count == size)
        #expect(actual == expected)
    }

    @Test("a list of more than 1,000 keys returns every key (all pages)", arguments: StoreKind.allCases)
    func manyKeys(kind: StoreKind) async throws {
        let store = try kind.make()
        let count = 1_050
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in 0..<16 {
                group.addTask {
                    for i in stride(from: batch, to: count, by: 16) {
                        _ = try await store.put(String(format: "many/%05d", i), bytes: [UInt8(i % 256)])
                    }
                }
            }
            try await group.waitForAll()
        }
        let keys = try await store.list(prefix: "many/").map(\.key)
        #expect(keys.count == count)
        #expect(keys == (0..<count).map { String(format: "many/%05d", $0) })
    }

    @Test("a missing object: get fails naming it, head is nil", arguments: StoreKind.allCases)
    func missing(kind: StoreKind) async throws {
        let store = try kind.make()
        #expect(try await store.head("nope/none") == nil)
        do {
            _ = try await store.get("nope/none")
            Issue.record("got a missing object")
        } catch let error as ObjectStoreError {
            #expect(error.code == .notFound)
            #expect(error.description.contains("nope/none"))
        }
    }

    @Test("a put whose source fails leaves no object behind", arguments: StoreKind.allCases)
    func failedPut(kind: StoreKind) async throws {
        let store = try kind.make()
        struct Broken: Error {}
        // Three parts' worth, then the source breaks: S3 has started a multipart upload.
        let given = Mutex(0)
        let source = ByteStream {
            let n = given.withLock { n in n += 1; return n }
            if n <= 16 { return [UInt8](repeating: UInt8(n), count: 1 << 20) }
            throw Broken()
        }
        await #expect(throws: Broken.self) { _ = try await store.put("broken.bin", from: source) }
        #expect(try await store.head("broken.bin") == nil)
        #expect(try await store.list(prefix: "").isEmpty)
        if let s3 = store as? S3Store {
            #expect(try await s3.listUploads().isEmpty, "the multipart upload was not aborted")
        }
        if let local = store as? LocalStore {
            #expect(try await local.staleTemporaryFiles(olderThan: -1).isEmpty)
        }
    }

    @Test("a reader never sees half an object while it is being written", arguments: StoreKind.allCases)
    func atomicVisibility(kind: StoreKind) async throws {
        let store = try kind.make()
        let gate = AsyncGate()
        let sent = Mutex(0)
        let source = ByteStream {
            let n = sent.withLock { n in n += 1; return n }
            if n == 2 { await gate.wait() }
            return n <= 8 ? [UInt8](repeating: 7, count: 1 << 20) : nil
        }
        let writer = Task { try await store.put("atomic.bin", from: source) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await store.head("atomic.bin") == nil)
        #expect(try await store.list(prefix: "").isEmpty)
        await gate.open()
        _ = try await writer.value
        #expect(try await store.head("atomic.bin")?.size == 8 << 20)
    }
}

@Suite("S3 errors")
struct S3ErrorTests {
    @Test("a wrong secret is a clear 403 naming the access key, not the secret")
    func wrongSecret() async throws {
        let store = try S3Store(S3Configuration(
            endpoint: TestServices.s3Endpoint, bucket: TestServices.s3Bucket,
            credentials: AWSCredentials(accessKeyID: TestServices.s3AccessKey, secretAccessKey: "not-the-secret")),
            logger: Logger(label: "test"))
        do {
            _ = try await store.put("x", bytes: [1])
            Issue.record("put with a wrong secret succeeded")
        } catch let error as ObjectStoreError {
            #expect(error.code == .accessDenied)
            #expect(error.status == 403)
            #expect(error.s3Code == "SignatureDoesNotMatch")
            #expect(error.description.contains("AWS_SECRET_ACCESS_KEY"))
            #expect(!error.description.contains("not-the-secret"))
        }
    }

    @Test("an unknown access key is named")
    func unknownKey() async throws {
        let store = try S3Store(S3Configuration(
            endpoint: TestServices.s3Endpoint, bucket: TestServices.s3Bucket,
            credentials: AWSCredentials(accessKeyID: "AKIANOSUCHKEY0000000", secretAccessKey: "x")),
            logger: Logger(label: "test"))
        do {
            _ = try await store.list(prefix: "")
            Issue.record("list with an unknown key succeeded")
        } catch let error as ObjectStoreError {
            #expect(error.code == .accessDenied)
            #expect(error.description.contains("AKIANOSUCHKEY0000000"))
        }
    }

    @Test("a missing bucket is named")
    func missingBucket() async throws {
        let store = try S3Store(S3Configuration(
            endpoint: TestServices.s3Endpoint, bucket: "dbq-no-such-bucket",
            credentials: AWSCredentials(accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey)),
            logger: Logger(label: "test"))
        do {
            _ = try await store.list(prefix: "")
            Issue.record("list of a missing bucket succeeded")
        } catch let error as ObjectStoreError {
            #expect(error.code == .notFound)
            #expect(error.description.contains("dbq-no-such-bucket"))
        }
    }

    @Test("nothing listening: a network error naming the endpoint, after bounded retries")
    func unreachable() async throws {
        let store = try S3Store(S3Configuration(
            endpoint: "http://127.0.0.1:\(TestServices.closedPort)", bucket: "bucket",
            credentials: AWSCredentials(accessKeyID: "a", secretAccessKey: "b"), maxAttempts: 3,
            backoff: Backoff(base: .milliseconds(50), cap: .milliseconds(200))),
            logger: Logger(label: "test"))
        let started = ContinuousClock.now
        do {
            _ = try await store.head("k")
            Issue.record("reached a closed port")
        } catch let error as ObjectStoreError {
            #expect(error.code == .network)
            #expect(error.description.contains("127.0.0.1:\(TestServices.closedPort)"))
            #expect(error.description.contains("after 3 attempts"))
        }
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
    }

    @Test("abandoned multipart uploads can be listed and aborted")
    func pendingUploads() async throws {
        let store = try #require(try StoreKind.s3.make() as? S3Store)
        let pending = try await store.listUploads()
        #expect(pending.isEmpty)
    }
}

/// Holds waiters until opened.
actor AsyncGate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        waiters.forEach { $0.resume() }
        waiters = []
    }
}

