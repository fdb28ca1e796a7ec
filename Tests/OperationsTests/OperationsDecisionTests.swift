import Foundation
@testable import Operations
import Testing

@Suite("Maintenance plan, health verdicts and stats trends (pure)")
struct OperationsDecisionTests {
    static func t(_ name: String, live: Int64 = 100_000, dead: Int64 = 0, mods: Int64 = 0, age: Int64 = 1000) -> TableVitals {
        TableVitals(schema: "public", name: name, liveRows: live, deadRows: dead, modifiedSinceAnalyze: mods, xidAge: age)
    }

    @Test("the plan: freeze by transaction-id age first (oldest first), then vacuum by dead rows, analyze by modifications, reindex by wasted bytes")
    func plan() {
        let tables = [
            Self.t("old", mods: 50_000, age: 160_000_000), Self.t("older", age: 190_000_000),
            Self.t("dirty", dead: 40_000), Self.t("dirtier", dead: 90_000), Self.t("few_dead", dead: 500),
            Self.t("small_share", live: 10_000_000, dead: 20_000), Self.t("changed", mods: 30_000), Self.t("clean"),
            Self.t("Mixed Case", dead: 50_000),
        ]
        let indexes = [IndexVitals(schema: "public", table: "dirty", name: "dirty_a", bytes: 100 << 20, bloat: 0.5, measured: false),
                       IndexVitals(schema: "public", table: "clean", name: "clean_a", bytes: 5 << 20, bloat: 0.9, measured: true),
                       IndexVitals(schema: "public", table: "clean", name: "clean_b", bytes: 500 << 20, bloat: 0.1, measured: true)]
        let actions = MaintenancePlan.plan(tables: tables, indexes: indexes)
        #expect(actions.map { "\($0.kind.rawValue) \($0.target)" } == [
            "freeze public.older", "freeze public.old",
            "vacuum public.dirtier", "vacuum public.Mixed Case", "vacuum public.dirty",
            "analyze public.changed",
            "reindex public.dirty_a",
        ])
        #expect(actions[1].sql == "VACUUM (FREEZE, ANALYZE) public.old")
        #expect(actions[3].sql == "VACUUM (ANALYZE) public.\"Mixed Case\"")
        #expect(actions.last?.sql == "REINDEX INDEX CONCURRENTLY public.dirty_a")
        #expect(actions.last?.reason.contains("statistical estimate") == true)
        var strict = MaintenancePlan.Thresholds()
        strict.deadMinimum = 100_000
        #expect(MaintenancePlan.plan(tables: tables, indexes: [], thresholds: strict).filter { $0.kind == .vacuum }.isEmpty)
        #expect(MaintenancePlan.withinBudget(elapsed: 10, budget: 60) && !MaintenancePlan.withinBudget(elapsed: 60, budget: 60) && MaintenancePlan.withinBudget(elapsed: 1e9, budget: nil))
    }

    @Test("health: each check's verdict by its thresholds; critical means exit 2")
    func health() {
        var f = HealthFacts(maxConnections: 100, connectionsByState: ["active": 5, "idle": 10])
        var checks = HealthChecks.evaluate(f)
        #expect(checks.allSatisfy { $0.status == .ok }, "\(checks.filter { $0.status != .ok })")
        #expect(HealthChecks.exitCode(checks) == 0)
        f.idleInTransaction = [.init(pid: 42, seconds: 400, query: "UPDATE t SET a = 1")]
        f.blocked = [.init(pid: 43, seconds: 40, query: "UPDATE t SET a = 2", blockers: [.init(pid: 42, seconds: 400, query: "UPDATE t SET a = 1")])]
        f.sequences = [.init(name: "public.t_id_seq", type: "integer", lastValue: 2_040_109_465, maxValue: 2_147_483_647)]
        f.xidAge = 2_140_000_000
        f.multixactAge = 2_050_000_000
        checks = HealthChecks.evaluate(f)
        func status(_ name: String) -> HealthCheck.Status? { checks.first { $0.name == name }?.status }
        #expect(status("idle-in-transaction") == .warning)
        #expect(status("blocked-queries") == .warning)
        #expect(checks.first { $0.name == "blocked-queries" }?.value.contains("pid 43") == true)
        #expect(checks.first { $0.name == "blocked-queries" }?.value.contains("waits for pid 42") == true)
        #expect(status("sequences") == .critical)
        #expect(checks.first { $0.name == "sequences" }?.value.contains("95.0%") == true)
        #expect(status("wraparound") == .critical)
        #expect(status("multixact-wraparound") == .warning, "94 million MultiXact ids left")
        #expect(checks.filter { $0.status != .ok }.allSatisfy { $0.action != nil })
        #expect(HealthChecks.exitCode(checks) == 2)

        // Archiving: absent when archive_mode is off; by segments waiting; critical when
        // the last attempt failed.
        #expect(status("archiving") == nil)
        f.archiving = .init(lastArchivedWAL: "000000010000000000000007", secondsSinceArchived: 30, waiting: 2)
        checks = HealthChecks.evaluate(f)
        #expect(status("archiving") == .ok)
        f.archiving?.waiting = 12
        checks = HealthChecks.evaluate(f)
        #expect(status("archiving") == .warning)
        f.archiving?.failing = true
        f.archiving?.lastFailedWAL = "000000010000000000000008"
        checks = HealthChecks.evaluate(f)
        #expect(status("archiving") == .critical)
        #expect(checks.first { $0.name == "archiving" }?.value.contains("FAILED (000000010000000000000008)") == true)
    }

    @Test("trends: growth per table and statements whose calls between two samples took twice their earlier mean")
    func trends() {
        let t0 = Date(timeIntervalSince1970: 1_000_000), t1 = t0.addingTimeInterval(86_400)
        func sample(_ at: Date, bytes: Int64, rows: Int64, calls: Int64, total: Double) -> StatsSample {
            StatsSample(format: StatsSample.currentFormat, database: "main", takenAt: at, databaseBytes: bytes,
                        tables: [.init(name: "public.orders", rows: rows, deadRows: 0, totalBytes: bytes, tableBytes: bytes, toastBytes: 0, indexBytes: 0, seqScans: 0, indexScans: 0)],
                        indexes: [], statements: [.init(id: "7", query: "SELECT … WHERE a = $1", calls: calls, totalMs: total, meanMs: total / Double(calls), rows: 0, blocksHit: 0, blocksRead: 0),
                                                  .init(id: "8", query: "SELECT 1", calls: calls, totalMs: Double(calls), meanMs: 1, rows: 0, blocksHit: 0, blocksRead: 0)])
        }
        let report = StatsTrends.compare([sample(t1, bytes: 3_000, rows: 30, calls: 200, total: 100 + 100 * 5), sample(t0, bytes: 1_000, rows: 10, calls: 100, total: 100)])
        #expect(report?.growth.first?.bytesPerDay == 2_000)
        #expect(report?.slower.map(\.id) == ["7"])
        #expect(report?.slower.first?.factor == 5)
        #expect(StatsTrends.compare([sample(t0, bytes: 1, rows: 1, calls: 1, total: 1)]) == nil, "one sample: nothing to compare")
    }
}
