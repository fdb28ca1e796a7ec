import DBQSupport
import DBQTestSupport
import Foundation
@testable import ObjectStorage
import Logging
import Testing

/// Objects encrypted at rest: what goes in comes out, and anything changed, cut short,
/// reordered, taken from another object or read with another key is refused before a
/// byte of it is given out.
@Suite("Encryption at rest: dbq's object format and the encrypting store")
struct EncryptionTests {
    static let keyA = EncryptedObjects.Key(bytes: (0..<32).map { UInt8($0) })
    static let keyB = EncryptedObjects.Key(bytes: (0..<32).map { UInt8(255 - $0) })
    static let chunk = 1000

    static func encrypt(_ plain: [UInt8], key: EncryptedObjects.Key = keyA) async throws -> [UInt8] {
        let pieces = stride(from: 0, to: max(plain.count, 1), by: 777).map { Array(plain[$0..<min($0 + 777, plain.count)]) }
        return try await EncryptedObjects.encrypt(ByteStream.chunks(plain.isEmpty ? [] : pieces), key: key, chunkSize: chunk).collect(limit: 1 << 24)
    }

    static func decrypt(_ stored: [UInt8], keys: [EncryptedObjects.Key] = [keyA]) async throws -> [UInt8] {
        let pieces = stride(from: 0, to: max(stored.count, 1), by: 333).map { Array(stored[$0..<min($0 + 333, stored.count)]) }
        return try await EncryptedObjects.decrypt(ByteStream.chunks(pieces), keys: keys, object: "s3://b/x/dump.zst").collect(limit: 1 << 24)
    }

    @Test("round trip at every size around the chunk boundaries; the stored bytes hold no plaintext and the size is recoverable",
          arguments: [0, 1, 999, 1000, 1001, 2000, 3500])
    func roundTrip(_ size: Int) async throws {
        var g = SplitMix64(seed: UInt64(size))
        let marker = Array("MARKER-4711-dbq".utf8)
        let plain = (g.bytes(size) + marker).prefix(size + (size > 0 ? marker.count : 0))
        let stored = try await Self.encrypt(Array(plain))
        #expect(try await Self.decrypt(stored) == Array(plain))
        #expect(EncryptedObjects.plaintextSize(stored: Int64(stored.count), chunkSize: Self.chunk) == Int64(plain.count))
        #expect(!String(decoding: stored, as: UTF8.self).contains("MARKER-4711"))
        #expect(Array(stored.prefix(8)) == EncryptedObjects.magic)
    }

    @Test("a flipped byte anywhere, a truncated object (inside a chunk or at a chunk's end), two chunks swapped, a chunk from another object: each refused")
    func tampering() async throws {
        var g = SplitMix64(seed: 9)
        let plain = g.bytes(3500)
        let stored = try await Self.encrypt(plain)
        let sealed = Self.chunk + 16
        func refused(_ bytes: [UInt8], _ what: String) async {
            do {
                _ = try await Self.decrypt(bytes)
                Issue.record("\(what) was accepted")
            } catch let error as ObjectStoreError {
                #expect(error.message.contains("s3://b/x/dump.zst"), "\(what): \(error.message)")
            } catch {
                Issue.record("\(what): \(error)")
            }
        }
        for at in [0, 9, 20, 40, 64, 64 + 500, 64 + sealed + 3, stored.count - 1] {
            var copy = stored
            copy[at] ^= 0x01
            await refused(copy, "a flipped byte at \(at)")
        }
        await refused(Array(stored.prefix(stored.count - 10)), "truncated inside the last chunk")
        await refused(Array(stored.prefix(64 + 3 * sealed)), "truncated at a chunk's end")
        await refused(Array(stored.prefix(64)), "only the header")
        var swapped: [UInt8] = Array(stored[0..<64])
        swapped.append(contentsOf: stored[(64 + sealed)..<(64 + 2 * sealed)])
        swapped.append(contentsOf: stored[64..<(64 + sealed)])
        swapped.append(contentsOf: stored[(64 + 2 * sealed)...])
        await refused(swapped, "two chunks swapped")
        let other = try await Self.encrypt(plain)
        var mixed = stored
        mixed.replaceSubrange((64 + sealed)..<(64 + 2 * sealed), with: other[(64 + sealed)..<(64 + 2 * sealed)])
        await refused(mixed, "a chunk from another object of the same plaintext and key")
        await refused(Array("not encrypted at all, a zstd frame perhaps".utf8) + [UInt8](repeating: 0, count: 64), "a clear object")
    }

    @Test("a wrong or missing key names the fingerprint needed and those available; an old key listed decrypts (rotation)")
    func keys() async throws {
        let stored = try await Self.encrypt(Array("rows".utf8), key: Self.keyA)
        do {
            _ = try await Self.decrypt(stored, keys: [Self.keyB])
            Issue.record("decrypted with the wrong key")
        } catch let error as ObjectStoreError {
            #expect(error.message.contains(Self.keyA.fingerprint) && error.message.contains(Self.keyB.fingerprint), "\(error.message)")
            #expect(error.code == .configuration)
        }
        do {
            _ = try await Self.decrypt(stored, keys: [])
            Issue.record("decrypted with no key")
        } catch let error as ObjectStoreError {
            #expect(error.message.contains(Self.keyA.fingerprint) && error.message.contains("none"), "\(error.message)")
        }
        #expect(try await Self.decrypt(stored, keys: [Self.keyB, Self.keyA]) == Array("rows".utf8))
        #expect(try EncryptedObjects.Key(text: String(repeating: "ab", count: 32), name: "K").fingerprint.count == 32)
        #expect(try EncryptedObjects.Key(text: Data((0..<32).map { UInt8($0) }).base64EncodedString(), name: "K").fingerprint == Self.keyA.fingerprint)
        #expect(throws: ObjectStoreError.self) { try EncryptedObjects.Key(text: "short", name: "DBQ_ENCRYPTION_KEY") }
    }

    @Test("the encrypting store: manifests in clear, everything else encrypted; sizes as written; no key: manifests readable, writes refused")
    func store() async throws {
        let dir = TestServices.temporaryDirectory("dbq-encrypted")
        let base = try LocalStore(root: dir)
        let store = EncryptedStore(base: base, current: Self.keyA, keySource: "DBQ_ENCRYPTION_KEY")
        let data = (0..<600_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let info = try await store.put("backups/main/x/dump.zst", bytes: data)
        #expect(info.size == Int64(data.count), "the size the caller wrote")
        _ = try await store.put("backups/main/x/manifest.json", bytes: Array("{\"id\": \"x\"}".utf8))
        #expect(try await base.getBytes("backups/main/x/manifest.json") == Array("{\"id\": \"x\"}".utf8), "a manifest stays readable")
        let raw = try await base.getBytes("backups/main/x/dump.zst", limit: 1 << 22)
        #expect(Array(raw.prefix(8)) == EncryptedObjects.magic && raw.count > data.count)
        #expect(try await store.getBytes("backups/main/x/dump.zst", limit: 1 << 22) == data)
        #expect(try await store.head("backups/main/x/dump.zst")?.size == Int64(data.count))
        #expect(try await store.list(prefix: "backups/").map(\.size) == [Int64(data.count), 11])
        #expect(try await store.keyFingerprint(of: "backups/main/x/dump.zst") == Self.keyA.fingerprint)
        let keyless = EncryptedStore(base: base, current: nil, keySource: "DBQ_ENCRYPTION_KEY")
        #expect(try await keyless.getBytes("backups/main/x/manifest.json").count == 11)
        let write = await #expect(throws: ObjectStoreError.self) { _ = try await keyless.put("backups/main/y/dump.zst", bytes: [1]) }
        #expect(write?.message.contains("DBQ_ENCRYPTION_KEY is not set") == true, "\(String(describing: write))")
        let read = await #expect(throws: ObjectStoreError.self) { _ = try await keyless.getBytes("backups/main/x/dump.zst", limit: 1 << 22) }
        #expect(read?.message.contains(Self.keyA.fingerprint) == true, "\(String(describing: read))")
    }
}

@Suite("S3 server-side encryption (the local S3 server)")
struct ServerSideEncryptionTests {
    @Test("sse: AES256 is asked on a single PUT and on a multipart upload; the server reports it on HEAD")
    func asked() async throws {
        var configuration = S3Configuration(
            endpoint: TestServices.s3Endpoint, bucket: TestServices.s3Bucket, prefix: "sse-tests/\(UUID().uuidString)", addressing: .path,
            credentials: AWSCredentials(accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey))
        configuration.serverSideEncryption = .init(mode: "AES256")
        let store = try S3Store(configuration, logger: Logger(label: "test"))
        _ = try await store.put("small.bin", bytes: [1, 2, 3])
        _ = try await store.put("large.bin", from: ByteStream.pattern(count: 12 << 20))
        for key in ["small.bin", "large.bin"] {
            let response = try await store.send("HEAD", key: key, expect: [200])
            #expect(response.headers["x-amz-server-side-encryption"] == "AES256", "\(key): \(response.headers)")
        }
    }
}
