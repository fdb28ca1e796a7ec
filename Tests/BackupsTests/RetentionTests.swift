@testable import Backups
@testable import DatabaseJobs
import DBQTestSupport
import Foundation
@testable import ObjectStorage
import Queue
import Testing

@Suite("Retention policy: pure decisions from manifest times")
struct RetentionPolicyTests {
    static let day: TimeInterval = 86_400
    static let now = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18

    /// One backup a day at 03:00 UTC for `days` days before `now`.
    static func daily(_ days: Int, verified: Set<Int> = []) -> [RetentionPolicy.Candidate] {
        let base = Calendar(identifier: .gregorian).startOfDay(for: now).addingTimeInterval(3 * 3600)
        return (0..<days).map { i in
            RetentionPolicy.Candidate(id: "b\(i)", time: base.addingTimeInterval(-Double(i) * day), verified: verified.contains(i))
        }
    }

    static func policy(last: Int = 0, daily: Int = 0, weekly: Int = 0, monthly: Int = 0, yearly: Int = 0, minAge: Double = 0) -> RetentionPolicy {
        RetentionPolicy(keepLast: last, daily: daily, weekly: weekly, monthly: monthly, yearly: yearly, minAgeSeconds: minAge, graceSeconds: 0)
    }

    static func kept(_ decisions: [RetentionPolicy.Decision]) -> [String] { decisions.filter(\.keep).map(\.id) }

    @Test("each rule alone over three years of daily backups keeps exactly its count",
          arguments: [
            (policy(last: 5), 5), (policy(daily: 7), 7), (policy(weekly: 4), 4), (policy(monthly: 12), 12),
            (policy(yearly: 3), 3), // 7 days (Nov 12–18); weeks add Nov 8 and Nov 1 (Nov 15 is a kept day); months add
            // Oct 31 … Dec 31 2025 (11); years add only 2024-12-31 (2025's is a kept month).
            (policy(daily: 7, weekly: 4, monthly: 12, yearly: 3), 7 + 2 + 11 + 1),
          ])
    func counts(_ policy: RetentionPolicy, _ expected: Int) {
        let decisions = policy.plan(Self.daily(3 * 365), now: Self.now)
        #expect(decisions.count == 3 * 365)
        // Overlaps: the newest backup is the newest of its day, week, month and year.
        #expect(Self.kept(decisions).count == expected)
        #expect(decisions.first?.keep == true)
    }

    @Test("GFS keeps the newest of each period: days, ISO weeks, months, years in UTC")
    func periods() {
        let decisions = Self.policy(weekly: 3, monthly: 2).plan(Self.daily(120), now: Self.now)
        var utc = Calendar(identifier: .iso8601)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let keptWeekly = decisions.filter { $0.reasons.contains { $0.hasPrefix("weekly") } }
        #expect(keptWeekly.count == 3)
        // Each weekly keeper is the newest backup of its ISO week: the next newer one is in another week.
        for d in keptWeekly {
            let newer = decisions.last { $0.time > d.time }
            if let newer { #expect(utc.component(.weekOfYear, from: newer.time) != utc.component(.weekOfYear, from: d.time)) }
        }
        let monthly = decisions.filter { $0.reasons.contains { $0.hasPrefix("monthly") } }.map(\.reasons)
        #expect(monthly.map { $0.first { $0.hasPrefix("monthly") }! } == ["monthly 2026-11", "monthly 2026-10"])
    }

    @Test("never deletes the newest verified backup nor one younger than min age")
    func safetyRules() {
        let candidates = Self.daily(30, verified: [20, 25])
        let decisions = Self.policy(last: 1, minAge: 3.5 * Self.day).plan(candidates, now: Self.now)
        let keep = Set(Self.kept(decisions))
        #expect(keep == ["b0", "b1", "b2", "b3", "b20"])
        #expect(decisions.first { $0.id == "b20" }?.reasons == ["newest verified"])
        #expect(decisions.first { $0.id == "b2" }?.reasons == ["younger than min age 84h"])
        #expect(decisions.first { $0.id == "b29" }?.reasons == ["kept by no rule"])
    }

    @Test("decided by recorded time, not by id or input order; ties broken by id")
    func orderIndependent() {
        var candidates = Self.daily(50)
        let expected = Self.policy(last: 2, weekly: 3).plan(candidates, now: Self.now)
        candidates.shuffle()
        // Ids that sort against time do not matter.
        let renamed = candidates.map { RetentionPolicy.Candidate(id: "z" + String(999 - Int($0.id.dropFirst())!), time: $0.time, verified: false) }
        let again = Self.policy(last: 2, weekly: 3).plan(renamed, now: Self.now)
        #expect(expected.map(\.keep) == again.map(\.keep))
        #expect(expected.map(\.time) == again.map(\.time))
    }

    @Test("several backups a day: only the newest of the day counts for daily")
    func severalPerDay() {
        let base = Self.now
        let candidates = (0..<24).map { RetentionPolicy.Candidate(id: "h\($0)", time: base.addingTimeInterval(-Double($0) * 3600), verified: false) }
        let decisions = Self.policy(daily: 1).plan(candidates, now: base)
        #expect(Self.kept(decisions) == ["h0"])
    }

    @Test("a policy that keeps nothing, or negative counts, is refused")
    func validation() {
        #expect(throws: JobError.self) { try Self.policy().validate() }
        #expect(throws: JobError.self) { try Self.policy(last: -1, daily: 3).validate() }
        #expect((try? RetentionPolicy.standard.validate()) != nil)
        #expect(Self.policy(last: 3).plan([], now: Self.now).isEmpty)
    }
}

@Suite("Retention applied: real backups, a real store, the shared lock", .serialized)
struct RetentionIntegrationTests {
    @Test("apply deletes what the plan says, keeps the verified one, removes orphans and unfinished writes")
    func apply() async throws {
        let source = try await Fixtures.makeSource(rows: 200)
        defer { Task { await Fixtures.drop(source) } }
        for kind in Fixtures.StoreKind.allCases {
            let env = try Fixtures.environment(databases: ["main": Fixtures.url(source).raw], storage: try Fixtures.storage(kind))
            let (_, store) = try env.store(nil)
            for _ in 0..<4 { _ = try await Fixtures.run(BackupJob(), in: env, .init(database: "main")) }
            var catalog = try await BackupCatalog.load(store)
            #expect(catalog.entries.count == 4)
            let oldest = catalog.entries.last!.id
            _ = try await Fixtures.run(VerifyBackupJob(), in: env, .init(database: "main", backup: oldest))
            // A folder with data and no manifest, and (on S3) an upload never completed.
            _ = try await store.put("backups/main/20200101T000000Z-orphan/dump.zst", bytes: [1, 2, 3])
            if let s3 = store as? S3Store { try await s3.startAbandonedUpload("backups/main/20200101T000000Z-killed/dump.zst") }

            // A killed export (objects, no manifest) and a finished one.
            _ = try await store.put("exports/main/20200101T000000Z-killed/public.t.copy.zst", bytes: [1])
            _ = try await store.put("exports/main/20200101T000000Z-done/public.t.copy.zst", bytes: [1])
            _ = try await store.put("exports/main/20200101T000000Z-done/manifest.json", bytes: Array("{}".utf8))

            let policy = RetentionPolicy(keepLast: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0, minAgeSeconds: 0, graceSeconds: 0)
            let report = try await Retention.apply(policy, database: "main", store: store, env: env, owner: "test", logger: Fixtures.logger)
            #expect(report.deleted.count == 2)
            // The killed export is recent: it could still be writing, so it stays.
            #expect(report.orphansRemoved == ["backups/main/20200101T000000Z-orphan"])
            // Eight hours on, past any export's timeout, it goes; the finished export stays.
            let later = try await Retention.apply(policy, database: "main", store: store, env: env, owner: "test", logger: Fixtures.logger,
                                                  now: { Date().addingTimeInterval(8 * 3600) })
            #expect(later.orphansRemoved == ["exports/main/20200101T000000Z-killed"])
            #expect(try await store.list(prefix: "exports/").map(\.key).sorted()
                == ["exports/main/20200101T000000Z-done/manifest.json", "exports/main/20200101T000000Z-done/public.t.copy.zst"])
            if store is S3Store { #expect(report.uploadsAborted == ["backups/main/20200101T000000Z-killed/dump.zst"]) }
            catalog = try await BackupCatalog.load(store)
            #expect(catalog.entries.count == 2)
            #expect(catalog.entries.contains { $0.id == oldest && $0.isVerified })
            #expect(catalog.orphans.isEmpty)
            if let s3 = store as? S3Store { #expect(try await s3.listUploads(prefix: "backups/").isEmpty) }
            // Nothing is left of the deleted backups: no manifest-less remains.
            let keys = try await store.list(prefix: "backups/").map(\.key)
            #expect(keys.count == 2 * 2 + 1, "\(keys)")
        }
    }

    @Test("retention waits for a running backup's shared lock, then gives up with a retryable error")
    func lockShared() async throws {
        let env = try Fixtures.environment(databases: ["main": TestServices.databaseURL], storage: try Fixtures.storage(.local))
        let (_, store) = try env.store(nil)
        let lock = BackupLayout.lockName(database: "main", store: store.url)
        #expect(try await env.locks.tryAcquire(lock, mode: .shared, owner: "backup-1", ttl: .seconds(30)))
        let policy = RetentionPolicy.standard
        let error = await #expect(throws: JobError.self) {
            try await Retention.apply(policy, database: "main", store: store, env: env, owner: "retention", logger: Fixtures.logger)
        }
        #expect(error?.isRetryable == true)
        #expect(error?.message.contains("is locked") == true)
        // Two backups share it; once they are gone, retention takes it alone.
        #expect(try await env.locks.tryAcquire(lock, mode: .shared, owner: "backup-2", ttl: .seconds(30)))
        try await env.locks.release(lock, mode: .shared, owner: "backup-1")
        try await env.locks.release(lock, mode: .shared, owner: "backup-2")
        _ = try await Retention.apply(policy, database: "main", store: store, env: env, owner: "retention", logger: Fixtures.logger)
    }
}

extension S3Store {
    /// Starts a multipart upload and walks away, as a killed writer does.
    func startAbandonedUpload(_ key: String) async throws {
        _ = try await send("POST", key: key, query: [("uploads", "")], headers: [("Content-Type", "application/octet-stream")], expect: [200])
    }
}
