@testable import Backups
import Codecs
@testable import DatabaseJobs
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import ObjectStorage
import PostgresClient
import Queue
import Testing

/// Real pg_dump, pg_restore, PostgreSQL and stores: what a backup is worth.
@Suite("Backups: round trips, corruption, verification (real PostgreSQL and stores)", .serialized)
struct RoundTripTests {
    static let combinations: [(Fixtures.StoreKind, Codec)] = Fixtures.StoreKind.allCases.flatMap { kind in Codec.allCases.map { (kind, $0) } }

    @Test("backup, then restore into a new database: every table's contents equal", arguments: combinations)
    func roundTrip(_ kind: Fixtures.StoreKind, _ codec: Codec) async throws {
        let source = try await Fixtures.makeSource()
        let target = Fixtures.freshName("copy")
        defer { Task { await Fixtures.drop(source); await Fixtures.drop(target) } }
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: try Fixtures.storage(kind))

        let result = try await Fixtures.run(BackupJob(), in: env, .init(database: "main", codec: codec.rawValue))
        guard case .object(let fields)? = result, case .string(let id)? = fields["id"] else { Issue.record("no id in \(String(describing: result))"); return }

        let (_, store) = try env.store(nil)
        let catalog = try await BackupCatalog.load(store)
        let entry = try #require(catalog.entries.first)
        #expect(catalog.entries.count == 1 && entry.id == id)
        #expect(entry.manifest.codec == codec)
        #expect(entry.dumpKey.hasSuffix(BackupLayout.dumpName(codec)))
        #expect(entry.manifest.tables.first { $0.name == "accounts" }?.rows == 20_000)
        #expect(entry.manifest.tables.contains { $0.schema == "Odd Schema" && $0.name == "Weird \"Name\"" && $0.rows == 500 })
        #expect(entry.manifest.source.database == source)
        // What is stored is what the manifest says, byte for byte.
        let stored = try await store.getBytes(entry.dumpKey, limit: 256 << 20)
        #expect(Int64(stored.count) == entry.manifest.dump?.size)
        #expect(SHA256Hex.of(stored) == entry.manifest.dump?.sha256)
        if codec == .none { #expect(stored.prefix(5) == Array("PGDMP".utf8)[...]) }

        _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: target, create: true))
        let before = try await Fixtures.checksums(source)
        let after = try await Fixtures.checksums(target)
        #expect(before.count == 4)
        #expect(before == after)
    }

    @Test("a dump whose rows cannot be read from the archive (compressed by pg_dump) is counted in SQL, exactly, and restores")
    func rowCountFallback() async throws {
        let source = try await Fixtures.makeSource(rows: 3_000)
        let target = Fixtures.freshName("fallback")
        defer { Task { await Fixtures.drop(source); await Fixtures.drop(target) } }
        let wrapper = TestServices.temporaryDirectory("dbq-gzip-dump") + "/pg_dump"
        let pgDump = try await JobFixtures.pgDump()
        try """
            #!/bin/sh
            case "$1" in --version) exec '\(pgDump)' --version;; esac
            exec '\(pgDump)' "$@" --compress=1
            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        var gzipDump = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: try Fixtures.storage(.local))
        gzipDump.pgDump = wrapper
        let env = gzipDump
        _ = try await Fixtures.run(BackupJob(), in: env, .init(database: "main", codec: "none"))
        let (_, store) = try env.store(nil)
        let entry = try #require(try await BackupCatalog.load(store).entries.first)
        #expect(entry.manifest.tables.first { $0.name == "accounts" }?.rows == 3_000)
        #expect(entry.manifest.tables.contains { $0.schema == "Odd Schema" && $0.name == "Weird \"Name\"" && $0.rows == 500 })
        #expect(entry.manifest.tables.first { $0.name == "empty_table" }?.rows == 0)
        _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: target, create: true))
        #expect(try await Fixtures.checksums(source) == Fixtures.checksums(target))
    }

    @Test("one byte flipped in a stored backup: verify fails and restore refuses, each naming the object")
    func byteFlip() async throws {
        let source = try await Fixtures.makeSource(rows: 5_000)
        let target = Fixtures.freshName("flip")
        defer { Task { await Fixtures.drop(source); await Fixtures.drop(target) } }
        let storage = try Fixtures.storage(.local)
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: storage)
        _ = try await Fixtures.run(BackupJob(), in: env, .init(database: "main"))
        let (_, store) = try env.store(nil)
        let entry = try #require(try await BackupCatalog.load(store).entries.first)

        // A verification of the intact backup passes and is recorded.
        _ = try await Fixtures.run(VerifyBackupJob(), in: env, .init(database: "main"))
        #expect(try await BackupCatalog.load(store).entries.first?.verification?.outcome == .passed)

        guard case .file(let root) = storage.url else { Issue.record("not a local store"); return }
        let path = root + "/" + entry.dumpKey
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let object = "\(store.url)/\(entry.dumpKey)"

        let verifyError = await #expect(throws: JobError.self) {
            try await Fixtures.run(VerifyBackupJob(), in: env, .init(database: "main"))
        }
        #expect(verifyError?.message.contains("backup object \(object) is corrupt") == true, "\(String(describing: verifyError))")
        let verification = try #require(try await BackupCatalog.load(store).entries.first?.verification)
        #expect(verification.outcome == .failed)
        #expect(verification.mismatches.first?.contains(object) == true)

        let restoreError = await #expect(throws: JobError.self) {
            try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: target, create: true))
        }
        #expect(restoreError?.message.contains("backup object \(object) is corrupt") == true, "\(String(describing: restoreError))")
        // The database it created for the restore is gone again; no scratch database is left.
        #expect(try await !Fixtures.databaseExists(target))
        let admin = try await Fixtures.admin()
        let scratch = try await admin.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'dbq_verify_%'").scalar
        await admin.close()
        #expect(scratch == "0")
    }

    @Test("a restore over the source needs --force; an existing target needs no --create; a missing backup id is named")
    func restoreRefusals() async throws {
        let source = try await Fixtures.makeSource(rows: 100)
        defer { Task { await Fixtures.drop(source) } }
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: try Fixtures.storage(.local))
        _ = try await Fixtures.run(BackupJob(), in: env, .init(database: "main"))
        let (_, store) = try env.store(nil)

        let overSource = await #expect(throws: JobError.self) {
            try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: "main"))
        }
        #expect(overSource?.message.contains("refusing to restore over the source database 'main'") == true)
        let exists = await #expect(throws: JobError.self) {
            try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: source, create: true, force: true))
        }
        #expect(exists?.message.contains("already exists") == true, "\(String(describing: exists))")
        let missing = await #expect(throws: JobError.self) {
            try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", backup: "20200101T000000Z-nothing", target: "x_restore", create: true))
        }
        #expect(missing?.message == "no backup '20200101T000000Z-nothing' of database 'main' in \(store.url); dbq backups list shows the ids")
        // --force with --clean restores over the source itself.
        _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: "main", clean: true, force: true))
        #expect(try await Fixtures.checksums(source)["public.accounts"]?.hasPrefix("100:") == true)
    }

    @Test("a lost lease before the commit: no manifest, the upload is removed")
    func lostLeaseCommitsNothing() async throws {
        let source = try await Fixtures.makeSource(rows: 100)
        defer { Task { await Fixtures.drop(source) } }
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: try Fixtures.storage(.local))
        let id = JobID.make()
        let context = Fixtures.context("backup", id: id, confirmLease: { throw LeaseLostError(jobID: id) })
        await #expect(throws: LeaseLostError.self) {
            try await Fixtures.run(BackupJob(), in: env, .init(database: "main"), context: context)
        }
        let (_, store) = try env.store(nil)
        let catalog = try await BackupCatalog.load(store)
        #expect(catalog.entries.isEmpty)
        #expect(try await store.list(prefix: "backups/").isEmpty)
    }
}

enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        Crypto.SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

import Crypto

/// A dump cut into several objects (`parts_per_object`): memory stays flat whatever the
/// size, and restore, verify and corruption checks see one stream.
@Suite("Backups: dumps cut into several objects (real S3)", .serialized)
struct SegmentedBackupTests {
    @Test("one part per object on S3: the dump lands in several objects, restores equal, verifies, and a flipped byte in a later object is named")
    func segmented() async throws {
        let source = try await Fixtures.makeSource(rows: 2_000, randomMiB: 12)
        let target = Fixtures.freshName("segments")
        defer { Task { await Fixtures.drop(source); await Fixtures.drop(target) } }
        var storage = try Fixtures.storage(.s3)
        storage.partsPerObject = 1
        let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: storage)
        #expect(env.objectLimit(nil) == 5 << 20)

        let result = try await Fixtures.run(BackupJob(), in: env, .init(database: "main", codec: "none"))
        guard case .object(let fields)? = result, case .number(let count)? = fields["objects"] else { Issue.record("\(String(describing: result))"); return }
        #expect(count >= 3)
        let (_, store) = try env.store(nil)
        let entry = try #require(try await BackupCatalog.load(store).entries.first)
        let objects = entry.manifest.objects
        #expect(objects.map(\.name) == (0..<objects.count).map { $0 == 0 ? "dump" : "dump.\($0)" })
        #expect(objects.dropLast().allSatisfy { $0.size == 5 << 20 })
        // Each object is what the manifest says; together they are one pg_dump archive.
        var whole: [UInt8] = []
        for object in objects {
            let bytes = try await store.getBytes(entry.folder + "/" + object.name, limit: 16 << 20)
            #expect(Int64(bytes.count) == object.size && SHA256Hex.of(bytes) == object.sha256)
            whole += bytes
        }
        #expect(whole.prefix(5) == Array("PGDMP".utf8)[...])
        #expect(Int64(whole.count) == objects[0].rawSize)

        _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: target, create: true))
        #expect(try await Fixtures.checksums(source) == Fixtures.checksums(target))
        _ = try await Fixtures.run(VerifyBackupJob(), in: env, .init(database: "main"))

        // One byte flipped in the second object: refused, naming that object.
        let second = entry.folder + "/" + objects[1].name
        var bytes = try await store.getBytes(second, limit: 16 << 20)
        bytes[bytes.count / 2] ^= 0xFF
        _ = try await store.put(second, bytes: bytes)
        let other = Fixtures.freshName("segments-bad")
        defer { Task { await Fixtures.drop(other) } }
        do {
            _ = try await Fixtures.run(RestoreJob(), in: env, .init(database: "main", target: other, create: true))
            Issue.record("a restore of a corrupt object succeeded")
        } catch {
            #expect("\(error)".contains("\(objects[1].name) is corrupt"), "\(error)")
        }
        #expect(try await !Fixtures.databaseExists(other))
    }
}
