@testable import Backups
import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import ObjectStorage
import PostgresClient
import Queue
import Testing

/// A storage with `encryption:`: backups written there are not readable without the key,
/// restore and verify with it, refuse a wrong one naming both fingerprints, and read an
/// old key listed for rotation while new ones use the current.
@Suite("Encrypted backups (real PostgreSQL, real S3)", .serialized)
struct EncryptedBackupTests {
    static func keyText(_ seed: UInt8) -> String { (0..<32).map { String(format: "%02x", UInt8(truncatingIfNeeded: Int($0) * 7 + Int(seed))) }.joined() }

    @Test("an encrypted backup holds no marker and no zstd frame; restore and verify with the key; a wrong key is refused naming both fingerprints, nothing restored; an old key listed restores old backups while new ones use the new key")
    func encryptedBackup() async throws {
        let source = try await Fixtures.makeSource(rows: 3_000)
        let restored = Fixtures.freshName("enc"), refused = Fixtures.freshName("encno"), rotated = Fixtures.freshName("encrot")
        defer { Task { for db in [source, restored, refused, rotated] { await Fixtures.drop(db) } } }
        let marker = "MARKER-ENCRYPTED-7741"
        let c = try await PostgresConnection.connect(Fixtures.url(source).raw, logger: Fixtures.logger)
        _ = try await c.execute("CREATE TABLE secrets (v text); INSERT INTO secrets SELECT '\(marker)-' || g FROM generate_series(1, 100) g")
        await c.close()
        let id = UUID().uuidString.prefix(8).uppercased().replacingOccurrences(of: "-", with: "")
        let current = "DBQ_TEST_ENC_KEY_\(id)", old = "DBQ_TEST_ENC_OLD_\(id)"
        setenv(current, Self.keyText(1), 1)
        defer { unsetenv(current); unsetenv(old) }
        let plain = try Fixtures.storage(.s3)
        var storage = plain
        storage.encryption = .init(keyEnv: current, oldKeysEnv: old)
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: storage)
        let backup = JobFixtures.object(try await Fixtures.run(BackupJob(), in: env, .init(database: "main")))
        guard case .string(let key)? = backup["key"] else { Issue.record("no key: \(backup)"); return }
        // As stored: dbq's header, no zstd frame, no marker.
        let raw = try plain.open(logger: Fixtures.logger)
        let stored = try await raw.getBytes(key, limit: 64 << 20)
        #expect(Array(stored.prefix(8)) == EncryptedObjects.magic)
        #expect(!stored.starts(with: [0x28, 0xB5, 0x2F, 0xFD]))
        #expect(!String(decoding: stored, as: UTF8.self).contains(marker))
        let manifest = try await raw.getBytes(key.split(separator: "/").dropLast().joined(separator: "/") + "/manifest.json")
        #expect(String(decoding: manifest, as: UTF8.self).contains("\"tables\""), "the manifest stays readable")
        let fingerprintA = EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(1))).fingerprint
        #expect(String(decoding: manifest, as: UTF8.self).contains("\"encryption\" : \"\(fingerprintA)\""), "the manifest names the key")

        _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: restored, create: true))
        #expect(try await Fixtures.checksums(restored) == Fixtures.checksums(source))
        let verified = JobFixtures.object(try await Fixtures.run(VerifyBackupJob(), in: env, .init(database: "main")))
        #expect(verified["outcome"] == JSONValue.string("passed"), "\(verified)")

        // A wrong key: refused, naming the fingerprint needed and the one available; nothing restored.
        setenv(current, Self.keyText(2), 1)
        let wrongEnv = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: storage)
        do {
            _ = try await Fixtures.run(RestoreJob(), in: wrongEnv, .init(database: "main", target: refused, create: true))
            Issue.record("restored with a wrong key")
        } catch {
            let a = EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(1))).fingerprint, b = EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(2))).fingerprint
            #expect("\(error)".contains(a) && "\(error)".contains(b), "\(error)")
        }
        #expect(try await Self.tableCount(refused) == 0, "nothing restored with the wrong key")
        // verify-backup without the key it needs: fails, naming it, and records no pass.
        do {
            let outcome = JobFixtures.object(try await Fixtures.run(VerifyBackupJob(), in: wrongEnv, .init(database: "main")))
            #expect(outcome["outcome"] != JSONValue.string("passed"), "verified with the wrong key: \(outcome)")
        } catch {
            #expect("\(error)".contains(EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(1))).fingerprint), "\(error)")
        }

        // Rotation: the new key current, the old listed: the old backup restores; a new one uses the new key.
        setenv(old, Self.keyText(1), 1)
        let rotatedEnv = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: storage)
        _ = try await Fixtures.run(RestoreJob(), in: rotatedEnv, .init(database: "main", backup: String(key.split(separator: "/")[2]), target: rotated, create: true))
        #expect(try await Fixtures.checksums(rotated) == Fixtures.checksums(source))
        let second = JobFixtures.object(try await Fixtures.run(BackupJob(), in: rotatedEnv, .init(database: "main")))
        guard case .string(let key2)? = second["key"] else { Issue.record("no key"); return }
        let (_, encrypted) = try rotatedEnv.store(nil)
        #expect(try await (encrypted as? EncryptedStore)?.keyFingerprint(of: key2) == EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(2))).fingerprint)
        #expect(try await (encrypted as? EncryptedStore)?.keyFingerprint(of: key) == EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(1))).fingerprint)

        // dbq storage reencrypt: the old backup rewritten under the new key, its manifest
        // naming it; then it restores with the new key alone.
        guard case .s3(let bucket, let prefix) = plain.url else { return }
        let config = TestServices.temporaryDirectory("dbq-reencrypt") + "/dbq.yaml"
        try """
            storages:
              archive:
                url: "s3://\(bucket)/\(prefix)"
                endpoint: "\(plain.endpoint!)"
                region: us-east-1
                addressing: path
                access_key_id: "\(TestServices.s3AccessKey)"
                secret_access_key: "\(TestServices.s3SecretKey)"
                encryption: {key_env: \(current), old_keys_env: \(old)}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let folder = key.split(separator: "/").dropLast().joined(separator: "/")
        let run = try await runCommand(TestServices.dbqBinary, ["storage", "reencrypt", "--config", config, "--storage", "archive", folder])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("1 objects re-encrypted") && run.stderr.contains("1 manifests updated"), "\(run.stderr)")
        let fingerprintB = EncryptedObjects.Key(bytes: Self.bytes(Self.keyText(2))).fingerprint
        #expect(try await (encrypted as? EncryptedStore)?.keyFingerprint(of: key) == fingerprintB)
        #expect(String(decoding: try await raw.getBytes(folder + "/manifest.json"), as: UTF8.self).contains(fingerprintB))
        unsetenv(old)
        let newOnly = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: storage)
        let again = Fixtures.freshName("encre")
        defer { Task { await Fixtures.drop(again) } }
        _ = try await Fixtures.run(RestoreJob(), in: newOnly, .init(database: "main", backup: String(key.split(separator: "/")[2]), target: again, create: true))
        #expect(try await Fixtures.checksums(again) == Fixtures.checksums(source))
    }

    static func bytes(_ hex: String) -> [UInt8] {
        stride(from: 0, to: hex.count, by: 2).map { i in UInt8(hex[hex.index(hex.startIndex, offsetBy: i)..<hex.index(hex.startIndex, offsetBy: i + 2)], radix: 16)! }
    }

    /// User tables in a database (0 when it does not exist).
    static func tableCount(_ database: String) async throws -> Int {
        guard try await Fixtures.databaseExists(database) else { return 0 }
        let c = try await PostgresConnection.connect(Fixtures.url(database).raw, logger: Fixtures.logger)
        defer { Task { await c.close() } }
        return Int(try await c.query("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").scalar ?? "0") ?? 0
    }
}
