@testable import Backups
import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import Logging
import ObjectStorage
import PostgresClient
import Queue
import Testing

/// Point-in-time recovery against a real server of its own: archiving through `dbq wal
/// push` (the built executable, run by PostgreSQL), a base backup, rows written around an
/// instant, restores to that instant and to the end of the archive, each started and
/// queried; the archive's checks (a corrupt segment, a gap, the same file twice).
@Suite("Point-in-time recovery (a real server archiving through dbq)", .serialized)
struct PointInTimeTests {
    /// A cluster archiving into a fresh S3 prefix through the built dbq, started.
    static func archivingCluster(pushOptions: String = "") throws -> (ScratchCluster, StorageSettings, config: String, dbq: String) {
        let storage = try Fixtures.storage(.s3)
        let cluster = try ScratchCluster(settings: [])
        let dbq = try cluster.install(TestServices.dbqBinary, as: "dbq")
        let config = try BackupFaultTests.writeConfig(databaseURL: cluster.url(), storage: storage, to: cluster.directory + "/dbq.yaml")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: config)
        let conf = """

            archive_mode = on
            archive_command = '\(dbq) wal push %p --database main --config \(config)\(pushOptions)'
            """
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: cluster.dataDirectory + "/postgresql.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(conf.utf8))
        try handle.close()
        try cluster.start()
        return (cluster, storage, config, dbq)
    }

    static func query(_ url: String, _ sql: String) async throws -> [String?] {
        let c = try await PostgresConnection.connect(url, logger: Fixtures.logger)
        defer { Task { await c.close() } }
        return try await c.query(sql).first?.values ?? []
    }

    /// Switches to a new WAL file and waits until the archiver has stored the one it left.
    static func archiveCurrent(_ url: String) async throws {
        let switched = try await query(url, "SELECT pg_walfile_name(pg_switch_wal())")[0] ?? ""
        let stored = try await eventually(.seconds(60), every: .milliseconds(200)) {
            let last = try await query(url, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0] ?? ""
            return last >= switched
        }
        #expect(stored, "the archiver did not store \(switched) within a minute")
    }

    @Test("archive, base backup, rows around an instant T: a restore to T has exactly the rows before T, one to --latest all of them; the promoted copy archives its new timeline's history")
    func restoreToInstant() async throws {
        let (cluster, storage, config, dbq) = try Self.archivingCluster()
        var restores: [String] = []
        defer { cluster.remove(also: restores) }
        let url = cluster.url()
        _ = try await Self.query(url, "CREATE TABLE events (id serial PRIMARY KEY, batch text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        _ = try await Self.query(url, "INSERT INTO events (batch) SELECT 'before-backup' FROM generate_series(1, 100)")
        let env = try Fixtures.environment(databases: ["main": url], storage: storage)
        let backup = JobFixtures.object(try await Fixtures.run(BaseBackupJob(), in: env, .init(database: "main")))
        #expect(backup["walStart"] != nil && backup["stopLSN"] != nil, "\(backup)")

        _ = try await Self.query(url, "INSERT INTO events (batch) SELECT 'before-T' FROM generate_series(1, 100)")
        try await Task.sleep(for: .milliseconds(1100))
        let instant = try await Self.query(url, "SELECT clock_timestamp()::text")[0]!
        try await Task.sleep(for: .milliseconds(1100))
        _ = try await Self.query(url, "INSERT INTO events (batch) SELECT 'after-T' FROM generate_series(1, 100)")
        try await Self.archiveCurrent(url)

        // To T: the rows committed before it, none after.
        let toT = cluster.directory + "/restore-t"
        let port = try ScratchCluster.freePort()
        restores.append(toT)
        let restored = JobFixtures.object(try await Fixtures.run(PITRRestoreJob(), in: env, .init(
            database: "main", to: instant, dataDirectory: toT, port: port, start: true, runAs: "postgres", dbq: dbq, config: config)))
        #expect(restored["started"] == JSONValue.bool(true), "\(restored)")
        let copy = "postgresql://postgres@127.0.0.1:\(port)/postgres"
        let batches = try await Self.query(copy, "SELECT string_agg(batch || '=' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM events GROUP BY batch) s")[0]
        #expect(batches == "before-T=100,before-backup=100", "\(batches ?? "nil")")
        #expect(try await Self.query(copy, "SELECT pg_is_in_recovery()")[0] == "f", "promoted")
        // The promoted copy is on a new timeline and archives its history file.
        try await Self.archiveCurrent(copy)
        let (_, store) = try env.store(nil)
        let archive = WALArchive(store: store, database: "main")
        let history = try await eventually(.seconds(60), every: .milliseconds(200)) {
            try await archive.list().contains { $0.file.name == "00000002.history" }
        }
        #expect(history, "00000002.history was not archived")
        cluster.stop(dataDirectory: toT)

        // On the latest timeline (the default): the history file leads to timeline 2, which
        // the first restore began at T — its rows, not the original's after T.
        let followed = cluster.directory + "/restore-followed"
        let port3 = try ScratchCluster.freePort()
        restores.append(followed)
        let onTwo = JobFixtures.object(try await Fixtures.run(PITRRestoreJob(), in: env, .init(
            database: "main", latest: true, dataDirectory: followed, port: port3, start: true, runAs: "postgres", dbq: dbq, config: config)))
        let followedCount = try await Self.query("postgresql://postgres@127.0.0.1:\(port3)/postgres", "SELECT count(*) FROM events")[0]
        #expect(followedCount == "200", "\(followedCount ?? "nil") rows; \(((try? String(contentsOfFile: followed + "/dbq-restore.log", encoding: .utf8)) ?? "").suffix(3000))")
        #expect(onTwo["timeline"] == JSONValue.string("3"), "promoted from timeline 2 to 3: \(onTwo)")
        // (Every restore promotes to a timeline of its own, so the next is 4.)
        cluster.stop(dataDirectory: followed)

        // To the end of the archive on the backup's timeline: every row.
        let latest = cluster.directory + "/restore-latest"
        let port2 = try ScratchCluster.freePort()
        restores.append(latest)
        _ = try await Fixtures.run(PITRRestoreJob(), in: env, .init(database: "main", latest: true, dataDirectory: latest, port: port2, start: true,
                                                                   runAs: "postgres", dbq: dbq, config: config, timeline: "current"))
        #expect(try await Self.query("postgresql://postgres@127.0.0.1:\(port2)/postgres", "SELECT count(*) FROM events")[0] == "300")
        cluster.stop(dataDirectory: latest)
        // verify-basebackup: the newest base backup restored to its own end in a scratch
        // directory, started, asked, stopped and removed.
        let verified = JobFixtures.object(try await Fixtures.run(VerifyBaseBackupJob(), in: env, .init(database: "main", runAs: "postgres", dbq: dbq, config: config)))
        #expect(verified["outcome"] == JSONValue.string("passed"), "\(verified)")

        // A directory that is not empty is refused, and nothing in it is touched.
        let refused = await #expect(throws: JobError.self) {
            _ = try await Fixtures.run(PITRRestoreJob(), in: env, .init(database: "main", latest: true, dataDirectory: latest))
        }
        #expect(refused?.message.contains("is not empty") == true, "\(String(describing: refused))")
    }

    @Test("the archive: the same file pushed twice is stored once, other content under its name is refused; a corrupt object is refused on fetch; a missing segment is a named gap")
    func archiveChecks() async throws {
        let storage = try Fixtures.storage(.s3)
        let env = try Fixtures.environment(databases: [:], storage: storage)
        let (_, store) = try env.store(nil)
        let archive = WALArchive(store: store, database: "main")
        func segment(_ n: UInt64) -> WALFileName { WALFileName.segment(timeline: 1, number: n) }
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(try await archive.push(segment(3), bytes: bytes) == .stored)
        #expect(try await archive.push(segment(3), bytes: bytes) == .alreadyStored)
        let other = await #expect(throws: JobError.self) { _ = try await archive.push(segment(3), bytes: bytes.reversed()) }
        #expect(other?.message.contains("already archived with other content") == true, "\(String(describing: other))")
        #expect(try await archive.fetch(segment(3)) == bytes)
        #expect(try await archive.fetch(segment(9)) == nil, "a file the archive lacks is not an error")
        // Segments 3, 4, 6, 7: 5 is missing.
        for n: UInt64 in [4, 6, 7] { _ = try await archive.push(segment(n), bytes: Array(bytes.prefix(1000 + Int(n)))) }
        let summary = WALArchiveSummary(try await archive.list())
        #expect(summary.timelines.first?.gaps == [segment(5).name], "\(summary)")
        #expect(summary.timelines.first?.first == segment(3).name && summary.timelines.first?.last == segment(7).name)
        // One object's bytes changed in the store: the fetch refuses it, naming it.
        let stored = try #require(try await archive.find(segment(4)))
        var packed = try await store.getBytes(stored.key)
        packed[packed.count / 2] ^= 0xFF
        _ = try await store.put(stored.key, bytes: packed)
        let corrupt = await #expect(throws: JobError.self) { _ = try await archive.fetch(segment(4)) }
        #expect(corrupt?.message.contains("is corrupt") == true && corrupt?.message.contains(segment(4).name) == true, "\(String(describing: corrupt))")

        // An encrypted storage: the archived file is dbq's encrypted format, fetched back
        // whole with the key, refused without it naming the fingerprint.
        let key = EncryptedObjects.Key(bytes: (0..<32).map { UInt8($0 * 3) })
        let encrypted = WALArchive(store: EncryptedStore(base: store, current: key, keySource: "K"), database: "enc")
        #expect(try await encrypted.push(segment(3), bytes: bytes) == .stored)
        let object = try #require(try await WALArchive(store: store, database: "enc").find(segment(3)))
        #expect(Array(try await store.getBytes(object.key).prefix(8)) == EncryptedObjects.magic)
        #expect(try await encrypted.fetch(segment(3)) == bytes)
        let keyless = WALArchive(store: EncryptedStore(base: store, current: nil, keySource: "K"), database: "enc")
        do {
            _ = try await keyless.fetch(segment(3))
            Issue.record("fetched without the key")
        } catch {
            #expect("\(error)".contains(key.fingerprint), "\(error)")
        }
    }

    @Test("a worker killed mid-base-backup (SIGKILL) leaves no manifest: the store lists no base backup")
    func killedMidBaseBackup() async throws {
        let (cluster, storage, config, _) = try Self.archivingCluster()
        defer { cluster.remove() }
        let url = cluster.url()
        // About 40 MB of table at 2 MB/s: the copy is still running when the worker dies.
        _ = try await Self.query(url, "CREATE TABLE filler AS SELECT i, md5(i::text) || md5((i * 7)::text) AS pad FROM generate_series(1, 400000) i")
        let child = try ChildProcess(TestServices.dbqBinary, ["run", "basebackup", "--database", "main", "--max-rate", "2M", "--config", config])
        try await Task.sleep(for: .seconds(4))
        #expect(child.isRunning, "the base backup ended before the kill: \(child.stderr)")
        child.signal(SIGKILL)
        _ = await child.wait(timeout: .seconds(10))
        let env = try Fixtures.environment(databases: ["main": url], storage: storage)
        let (_, store) = try env.store(nil)
        #expect(try await BaseBackupCatalog.load(store, database: "main").entries.isEmpty)
        let manifests = try await store.list(prefix: BaseBackupLayout.root + "/").filter { $0.key.hasSuffix("/manifest.json") }
        #expect(manifests.isEmpty, "\(manifests.map(\.key))")
        // The next base backup runs (the server's backup of the dead one has ended).
        let next = JobFixtures.object(try await Fixtures.run(BaseBackupJob(), in: env, .init(database: "main")))
        #expect(next["id"] != nil)
        #expect(try await BaseBackupCatalog.load(store, database: "main").entries.count == 1)
    }

    @Test("base-backup retention keeps what the policy keeps, and the WAL from the oldest kept backup's first file on, on every timeline; nothing else; refused when archive_mode is off")
    func retentionTrimsWAL() async throws {
        let storage = try Fixtures.storage(.s3)
        let env = try Fixtures.environment(databases: ["main": Fixtures.serverURL.raw], storage: storage)
        let (_, store) = try env.store(nil)
        let archive = WALArchive(store: store, database: "main")
        func segment(_ tli: UInt32, _ n: UInt64) -> WALFileName { WALFileName.segment(timeline: tli, number: n) }
        for n: UInt64 in 1...20 { _ = try await archive.push(segment(1, n), bytes: Array("tl1 \(n)".utf8)) }
        for n: UInt64 in 4...6 { _ = try await archive.push(segment(2, n), bytes: Array("tl2 \(n)".utf8)) }
        _ = try await archive.push(WALFileName("00000002.history")!, bytes: Array("1\t0/4000000\tbefore".utf8))
        // Three base backups, a day apart, starting at segments 3, 8 and 15.
        let now = Date()
        for (i, start) in [(0, UInt64(3)), (1, 8), (2, 15)] {
            let finished = now.addingTimeInterval(Double(i - 3) * 86_400)
            let id = ArtefactLayout.id(startedAt: finished, jobID: "job\(i)")
            let folder = BaseBackupLayout.folder(database: "main", id: id)
            _ = try await store.put(folder + "/" + BaseBackupLayout.dataName, bytes: [1, 2, 3])
            let manifest = BaseBackupManifest(
                format: BaseBackupManifest.currentFormat, id: id, database: "main", startedAt: finished, finishedAt: finished,
                job: JobStamp(id: "job\(i)", attempt: 1, fencingToken: 1), server: "x", serverVersion: "15.8", systemIdentifier: nil,
                timeline: 1, startLSN: "0/0", stopLSN: "0/0", walStart: segment(1, start).name, walStop: segment(1, start).name,
                walSegmentBytes: 16 << 20, objects: [ManifestObject(name: BaseBackupLayout.dataName, size: 3, sha256: "x", rawSize: 3)],
                backupManifestSHA256: "x")
            _ = try await store.put(folder + "/" + ArtefactLayout.manifestName, bytes: Array(try ManifestCoding.encoder.encode(manifest)))
        }
        var payload = RetentionJob.Payload(database: "main")
        payload.keepLast = 2
        payload.daily = 0
        payload.weekly = 0
        payload.monthly = 0
        payload.yearly = 0
        payload.minAgeSeconds = 0
        let report = JobFixtures.object(try await Fixtures.run(BaseBackupRetentionJob(), in: env, payload))
        #expect(report["walKeptFrom"] == JSONValue.string(segment(1, 8).name), "\(report)")
        #expect(try await BaseBackupCatalog.load(store, database: "main").entries.count == 2)
        let left = try await archive.list().map(\.file.name)
        let expected = (8...20).map { segment(1, $0).name } + ["00000002.history"]
        #expect(left.sorted() == expected.sorted(), "\(left)")

        // The shared test server does not archive: a base backup of it is refused, saying how to start.
        let refused = await #expect(throws: JobError.self) { _ = try await Fixtures.run(BaseBackupJob(), in: env, .init(database: "main")) }
        #expect(refused?.message.contains("archive_mode is off") == true && refused?.message.contains("dbq wal push") == true, "\(String(describing: refused))")
    }

    @Test("a restore that would follow a timeline whose branch segment is not archived yet is refused, naming it; with it archived it goes ahead")
    func timelineBranchArchived() async throws {
        let storage = try Fixtures.storage(.s3)
        let env = try Fixtures.environment(databases: [:], storage: storage)
        let (_, store) = try env.store(nil)
        let archive = WALArchive(store: store, database: "main")
        let manifest = BaseBackupManifest(
            format: BaseBackupManifest.currentFormat, id: "b", database: "main", startedAt: Date(), finishedAt: Date(),
            job: JobStamp(id: "j", attempt: 1, fencingToken: 1), server: "x", serverVersion: "15.8", systemIdentifier: nil,
            timeline: 1, startLSN: "0/2000028", stopLSN: "0/2000100", walStart: "000000010000000000000002", walStop: "000000010000000000000002",
            walSegmentBytes: 16 << 20, objects: [], backupManifestSHA256: "x")
        // Timeline 3 came from 2 at 0/7000100, which came from 1 at 0/5000060.
        _ = try await archive.push(WALFileName("00000003.history")!, bytes: Array("1\t0/5000060\tno recovery target specified\n2\t0/7000100\tno recovery target specified\n".utf8))
        _ = try await archive.push(WALFileName("00000002.history")!, bytes: Array("1\t0/5000060\tno recovery target specified\n".utf8))
        _ = try await archive.push(WALFileName("000000020000000000000005")!, bytes: [1])
        let missing = await #expect(throws: JobError.self) { try await PITRRestoreJob.checkTimelines(manifest, timeline: "latest", archive: archive) }
        #expect(missing?.message.contains("timeline 3 branches from 2 at 0/7000100, in 000000030000000000000007") == true, "\(String(describing: missing))")
        try await PITRRestoreJob.checkTimelines(manifest, timeline: "current", archive: archive)
        _ = try await archive.push(WALFileName("000000030000000000000007")!, bytes: [2])
        try await PITRRestoreJob.checkTimelines(manifest, timeline: "latest", archive: archive)
        try await PITRRestoreJob.checkTimelines(manifest, timeline: "2", archive: archive)
    }

    @Test("pushing ahead and fetching ahead: a backlog of segments archived with --ahead 4 leaves no gap, and a restore fetching 4 ahead replays it all")
    func aheadAndPrefetch() async throws {
        let spool = "/var/tmp/dbq-wal-spool-test-" + UUID().uuidString.prefix(8).lowercased()
        let (cluster, storage, config, dbq) = try Self.archivingCluster(pushOptions: " --ahead 4 --spool \(spool)")
        let restored = cluster.directory + "/restored"
        defer { cluster.remove(also: [restored]); try? FileManager.default.removeItem(atPath: spool) }
        let url = cluster.url()
        let env = try Fixtures.environment(databases: ["main": url], storage: storage)
        _ = try await Fixtures.run(BaseBackupJob(), in: env, .init(database: "main"))
        // A backlog: archiving held while about 8 segments are written, then let go.
        _ = try await Self.query(url, "ALTER SYSTEM SET archive_command = 'false'")
        _ = try await Self.query(url, "SELECT pg_reload_conf()")
        _ = try await Self.query(url, "CREATE TABLE backlog AS SELECT i, md5(i::text) AS pad FROM generate_series(1, 1000000) i")
        _ = try await Self.query(url, "ALTER SYSTEM RESET archive_command")
        _ = try await Self.query(url, "SELECT pg_reload_conf()")
        try await Self.archiveCurrent(url)
        let (_, store) = try env.store(nil)
        let summary = WALArchiveSummary(try await WALArchive(store: store, database: "main").list())
        #expect(summary.timelines.count == 1 && summary.timelines[0].gaps.isEmpty && summary.timelines[0].segments >= 6, "\(summary)")
        let port = try ScratchCluster.freePort()
        _ = try await Fixtures.run(PITRRestoreJob(), in: env, .init(database: "main", latest: true, dataDirectory: restored, port: port, start: true,
                                                                   runAs: "postgres", dbq: dbq, config: config, prefetch: 4))
        #expect(try await Self.query("postgresql://postgres@127.0.0.1:\(port)/postgres", "SELECT count(*) FROM backlog")[0] == "1000000")
        let auto = (try? String(contentsOfFile: restored + "/postgresql.auto.conf", encoding: .utf8)) ?? ""
        #expect(auto.contains("--prefetch 4"), "\(auto)")
    }
}
