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
}

extension JSONValue {
    var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
}
