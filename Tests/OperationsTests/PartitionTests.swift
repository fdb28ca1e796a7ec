import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQTestSupport
import Foundation
import Logging
@testable import Operations
import PostgresClient
import Queue
import Testing

@Suite("Partition upkeep: the plan (pure) and real PostgreSQL", .serialized)
struct PartitionTests {
    static func day(_ text: String) -> Date { try! Date(text + "T00:00:00Z", strategy: .iso8601) }

    @Test("the plan: premake from the current interval, retention by the upper bound, no child over rows of the default partition, far-future rows only noted")
    func plan() {
        let now = Self.day("2026-03-10").addingTimeInterval(5 * 3600)
        let spec = PartitionSpec(table: "public.events", interval: .daily, premake: 3, retentionSeconds: 5 * 86_400, retentionAction: .drop)
        let existing = [
            PartitionPlan.Existing(name: "events_p20260301", from: Self.day("2026-03-01"), to: Self.day("2026-03-02")),
            PartitionPlan.Existing(name: "events_p20260305", from: Self.day("2026-03-05"), to: Self.day("2026-03-06")),
            PartitionPlan.Existing(name: "events_p20260310", from: Self.day("2026-03-10"), to: Self.day("2026-03-11")),
        ]
        let plan = PartitionPlan.plan(spec, table: "events", existing: existing,
                                      defaultRows: [(Self.day("2026-03-12"), 4), (Self.day("2027-01-01"), 2)], now: now)
        #expect(plan.create.map(\.name) == ["events_p20260311", "events_p20260313"])
        #expect(plan.refused.count == 1 && plan.refused[0].hasPrefix("events_p20260312 [2026-03-12T00:00:00Z, 2026-03-13T00:00:00Z) not created: the default partition holds 4 row(s)"))
        // Wholly older than five days before now (05:00 on the 10th): ends on the 2nd, yes; on the 6th, not yet.
        #expect(plan.retire.map(\.name) == ["events_p20260301"])
        #expect(plan.notes.first?.contains("2 row(s) beyond the premade range (up to 2027-01-01T00:00:00Z)") == true)
        // Intervals align to their calendar: ISO weeks start on Monday, months on the 1st.
        #expect(PartitionPlan.floor(Self.day("2026-03-12"), .weekly) == Self.day("2026-03-09"))
        #expect(PartitionPlan.floor(Self.day("2026-03-12"), .monthly) == Self.day("2026-03-01"))
        #expect(PartitionPlan.next(Self.day("2026-01-01"), .monthly) == Self.day("2026-02-01"))
        #expect(PartitionPlan.childName("events", from: Self.day("2026-03-12").addingTimeInterval(3600 * 7), .hourly) == "events_p2026031207")
    }

    @Test("real: premade partitions, old ones dropped, rows in the default partition reported and their child refused; dbq.yaml checked")
    func real() async throws {
        let logger = Logger(label: "dbq.test.partitions")
        let server = try PostgresConnectionString(TestServices.databaseURL)
        let name = "dbqt_part_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        defer { Task { _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)"); await admin.close() } }
        let c = try await PostgresConnection.connect(server.replacingDatabase(name), logger: logger)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE TABLE events (id bigint, at timestamptz NOT NULL, kind text) PARTITION BY RANGE (at);
            CREATE TABLE events_p20260301 PARTITION OF events FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-03-02 00:00:00+00');
            CREATE TABLE events_p20260309 PARTITION OF events FOR VALUES FROM ('2026-03-09 00:00:00+00') TO ('2026-03-10 00:00:00+00');
            CREATE TABLE events_default PARTITION OF events DEFAULT;
            INSERT INTO events VALUES (1, '2026-03-01 10:00+00', 'old'), (2, '2026-03-12 08:00+00', 'early'), (3, '2031-01-01 00:00+00', 'far');
            """)
        var configuration = try DBQConfiguration.parse("", file: nil, environment: [:])
        configuration.databases = ["main": try PostgresConnectionString(server.replacingDatabase(name))]
        let env = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: logger, lockWait: .seconds(10))
        let spec = PartitionSpec(table: "public.events", interval: .daily, premake: 3, retentionSeconds: 5 * 86_400, retentionAction: .drop)
        let now = Self.day("2026-03-10").addingTimeInterval(3600)
        let context = JobContext(id: JobID.make(), kind: "partitions", queue: "t", attempt: 1, fencingToken: 1, logger: logger, confirmLease: {}, reportProgress: { _ in })
        guard case .object(let result)? = try await PartitionsJob().run(.init(database: "main", tables: [spec], now: now), in: env, context: context),
              case .object(let events)? = result["tables"]?.objectValue?["public.events"] ?? nil else { Issue.record("no result"); return }
        #expect(events["created"] == .array(["events_p20260310", "events_p20260311", "events_p20260313"].map(JSONValue.string)))
        #expect(events["dropped"] == .array([.string("events_p20260301")]))
        #expect(events["defaultRows"] == .number(2))
        guard case .array(let refused)? = events["refused"], case .array(let notes)? = events["notes"] else { Issue.record("no refusals or notes: \(events)"); return }
        #expect(refused.count == 1)
        #expect(notes.contains { if case .string(let n) = $0 { n.contains("beyond the premade range") } else { false } })
        #expect(notes.contains { if case .string(let n) = $0 { n.hasPrefix("detached without CONCURRENTLY") } else { false } }, "a default partition rules out CONCURRENTLY")
        #expect(try await c.query("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass").scalar
                == "events_default,events_p20260309,events_p20260310,events_p20260311,events_p20260313")
        #expect(try await c.query("SELECT to_regclass('events_p20260301') IS NULL").scalar == "t")

        // Declared in dbq.yaml: every problem named by path.
        do {
            _ = try DBQConfiguration.parse("databases: {main: 'postgresql://x@h/db'}\npartitions:\n  main:\n    - {table: public.events, interval: fortnightly, retention: soon}\n",
                                           file: "dbq.yaml", environment: [:])
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("partitions.main[0].interval: 'fortnightly' is not one of hourly, daily, weekly, monthly, yearly"))
            #expect("\(error)".contains("partitions.main[0].retention: 'soon' is not a duration"))
        }
    }

    @Test("real, on the database's clock: children in another schema retired; DETACH CONCURRENTLY without a default partition; a pending detach finished; a drop that failed after its detach is found and done by the next run")
    func retireAcrossSchemasAndStops() async throws {
        let logger = Logger(label: "dbq.test.partitions")
        let server = try PostgresConnectionString(TestServices.databaseURL)
        let name = "dbqt_part_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let admin = try await PostgresConnection.connect(server.raw, logger: logger)
        _ = try await admin.execute("CREATE DATABASE \(name)")
        defer { Task { _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)"); await admin.close() } }
        let url = server.replacingDatabase(name)
        let c = try await PostgresConnection.connect(url, logger: logger)
        defer { Task { await c.close() } }
        _ = try await c.execute("""
            CREATE SCHEMA archive;
            CREATE TABLE events (id bigint, at timestamptz NOT NULL) PARTITION BY RANGE (at);
            CREATE TABLE archive.events_p20000101 PARTITION OF events FOR VALUES FROM ('2000-01-01 00:00+00') TO ('2000-01-02 00:00+00');
            CREATE TABLE archive.events_p20000102 PARTITION OF events FOR VALUES FROM ('2000-01-02 00:00+00') TO ('2000-01-03 00:00+00');
            CREATE TABLE events_p20000103 PARTITION OF events FOR VALUES FROM ('2000-01-03 00:00+00') TO ('2000-01-04 00:00+00');
            CREATE TABLE events_p20000104 PARTITION OF events FOR VALUES FROM ('2000-01-04 00:00+00') TO ('2000-01-05 00:00+00');
            INSERT INTO events SELECT i, timestamptz '2000-01-01 00:00+00' + i * interval '1 hour' FROM generate_series(0, 95) i;
            CREATE VIEW keeps_a_partition AS SELECT * FROM events_p20000103;
            """)
        // A detach cancelled in its second phase (as a killed job's is): the partition stays pending.
        let reader = try await PostgresConnection.connect(url, logger: logger)
        _ = try await reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM events")
        let detacher = try await PostgresConnection.connect(url, logger: logger)
        let detach = Task { try await detacher.execute("ALTER TABLE events DETACH PARTITION events_p20000104 CONCURRENTLY") }
        let waiting = try await polled(.seconds(30), every: .milliseconds(100), {
            try await c.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE events DETACH%' AND wait_event_type = 'Lock'").scalar
        }, until: { $0 == "1" })
        #expect(waiting == "1")
        _ = try await c.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE events DETACH%' AND pid <> pg_backend_pid()")
        _ = try? await detach.value
        _ = try await reader.execute("COMMIT")
        await reader.close()
        await detacher.close()
        #expect(try await c.query("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'events_p20000104'::regclass").scalar == "t")

        var configuration = try DBQConfiguration.parse("", file: nil, environment: [:])
        configuration.databases = ["main": try PostgresConnectionString(url)]
        let env = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: logger, lockWait: .seconds(10))
        let spec = PartitionSpec(table: "public.events", interval: .daily, premake: 1, retentionSeconds: 5 * 86_400, retentionAction: .drop)
        let context = JobContext(id: JobID.make(), kind: "partitions", queue: "t", attempt: 1, fencingToken: 1, logger: logger, confirmLease: {}, reportProgress: { _ in })
        // The view keeps the third from being dropped: the run stops after its detach.
        let error = await #expect(throws: (any Error).self) { _ = try await PartitionsJob().run(.init(database: "main", tables: [spec]), in: env, context: context) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("keeps_a_partition"))
        #expect(try await c.query("SELECT to_regclass('archive.events_p20000101') IS NULL AND to_regclass('archive.events_p20000102') IS NULL").scalar == "t",
                "children in another schema than the parent are retired")
        #expect(try await c.query("SELECT to_regclass('events_p20000104') IS NULL").scalar == "t", "the pending detach was finished (first: nothing else detaches meanwhile) and dropped")
        #expect(try await c.query("SELECT relispartition FROM pg_class WHERE oid = 'events_p20000103'::regclass").scalar == "f", "detached, not dropped")

        _ = try await c.execute("DROP VIEW keeps_a_partition")
        guard case .object(let result)? = try await PartitionsJob().run(.init(database: "main", tables: [spec]), in: env, context: context),
              case .object(let events)? = result["tables"]?.objectValue?["public.events"] ?? nil else { Issue.record("no result"); return }
        #expect(events["dropped"] == .array([.string("events_p20000103")]), "\(events)")
        #expect(events["notes"] == nil, "no default partition: CONCURRENTLY, nothing to note: \(events)")
        #expect(try await c.query("SELECT to_regclass('events_p20000103') IS NULL").scalar == "t")
        // Premade from the database's today.
        let today = try #require(try await c.query("SELECT 'events_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')").scalar)
        #expect(try await c.query("SELECT to_regclass($1) IS NOT NULL", [PostgresParameter(today)]).scalar == "t")
    }
}

extension JSONValue {
    var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
}
