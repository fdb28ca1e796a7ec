import DatabaseJobs
import Foundation
import PostgresClient
import PostgresParser

/// Missing indexes from the real workload: the top statements of `pg_stat_statements`,
/// their candidate columns from PostgreSQL's parser, and each candidate's what-if plan
/// cost with HypoPG (hypothetical indexes: nothing is built).
public enum WorkloadAdvisor {
    public struct Options: Sendable, Equatable {
        public var minCalls: Int64 = 10
        public var minMeanMs: Double = 0
        /// A candidate is recommended when it cuts a statement's plan cost by at least this share.
        public var minSavings: Double = 0.5
        public var maxStatements: Int = 1000
        /// Statistics younger than this give no write rate: a bulk load divided by a few
        /// seconds is not a rate.
        public var minWriteRateAgeSeconds: Double = 3600
        public init() {}
    }

    public struct Availability: Sendable, Equatable {
        public var statements: Bool
        public var hypopg: Bool
        /// What is missing and how to enable it.
        public var notes: [String]
    }

    public static func availability(_ connection: PostgresConnection, database: String) async throws -> Availability {
        let rows = try await connection.query("""
            SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%',
                   EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'),
                   EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg'),
                   EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')
            """)
        let r = rows.first
        var notes: [String] = []
        let loaded = r?[0] == "t", statements = r?[1] == "t", hypopg = r?[2] == "t", available = r?[3] == "t"
        if !loaded {
            notes.append("pg_stat_statements is not loaded: add shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, restart PostgreSQL, then CREATE EXTENSION pg_stat_statements in database '\(database)'; without the workload, missing indexes are guessed from sequential scans (heuristic)")
        } else if !statements {
            notes.append("pg_stat_statements is loaded but not created in database '\(database)': CREATE EXTENSION pg_stat_statements")
        }
        if !hypopg {
            notes.append(available
                ? "HypoPG is installed on the server but not in database '\(database)': CREATE EXTENSION hypopg (what-if costs; without it candidates are not costed: heuristic)"
                : "HypoPG is not installed on the server (Debian: apt install postgresql-15-hypopg; then CREATE EXTENSION hypopg in database '\(database)'); without it candidates are not costed: heuristic")
        }
        return Availability(statements: loaded && statements, hypopg: hypopg, notes: notes)
    }

    public struct Statement: Sendable, Equatable {
        public var query: String
        public var calls: Int64
        public var meanMs: Double
    }

    /// The database's top statements by total time.
    public static func statements(_ connection: PostgresConnection, options: Options) async throws -> [Statement] {
        try await connection.query("""
            SELECT query, calls, mean_exec_time FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
              AND calls >= $1 AND mean_exec_time >= $2
              AND query !~* '\\m(pg_catalog|pg_stat|information_schema|hypopg|dbq_)'
            ORDER BY total_exec_time DESC LIMIT \(options.maxStatements)
            """, [PostgresParameter(String(options.minCalls)), PostgresParameter(String(options.minMeanMs))]).compactMap { r in
            guard let query = r[0] else { return nil }
            return Statement(query: query, calls: Int64(r[1] ?? "0") ?? 0, meanMs: Double(r[2] ?? "0") ?? 0)
        }
    }

    /// Recommendations (and, without HypoPG, heuristic candidates) for the workload.
    public static func advise(_ connection: PostgresConnection, catalog: IndexCatalog, availability: Availability,
                              options: Options) async throws -> [IndexFinding] {
        guard availability.statements else { return [] }
        let workload = try await statements(connection, options: options)
        var found: [WorkloadCandidates.Candidate: (statements: [String], before: Double, after: Double, bytes: Int64, weight: Double, calls: Int64, assumed: String?)] = [:]
        var stats: [String: RepresentativeValues.ColumnStats] = [:]
        var heuristic: [WorkloadCandidates.Candidate: (statements: [String], calls: Int64)] = [:]
        if availability.hypopg { _ = try await connection.execute("SET plan_cache_mode = force_generic_plan") }
        for original in workload {
            var statement = original
            statement.query = RepresentativeValues.preparable(original.query)
            let candidates = WorkloadCandidates.candidates(statement.query, catalog: catalog)
                .filter { catalog.table($0.table)?.partitioned == false }
            guard !candidates.isEmpty else { continue }
            guard availability.hypopg else {
                for c in candidates where c.columns.count == 1 {
                    heuristic[c, default: ([], 0)].statements.append(statement.query)
                    heuristic[c, default: ([], 0)].calls += statement.calls
                }
                continue
            }
            // As dexter does: every candidate at once as a hypothetical index; the plan says
            // which it would use, and the cost falls by what they save together. Three round
            // trips a statement: plan it, create the candidates, plan it again.
            guard let prepared = try await prepare(statement.query, connection: connection) else { continue }
            let before = prepared.plan.cost
            // Also at representative values, where a parameter's range decides the plan.
            let levels = try await representativeLevels(statement.query, catalog: catalog, stats: &stats, connection: connection)
            var levelsBefore: [Double?] = []
            for level in levels { levelsBefore.append(try await explainCustom(level, connection: connection)?.cost) }
            let creates = candidates.map { candidate -> String in
                let (schema, table) = split(candidate.table)
                let columns = candidate.columns.map(IndexCatalog.quotedIfNeeded).joined(separator: ", ")
                return "CREATE INDEX ON \(IndexCatalog.quotedIfNeeded(schema)).\(IndexCatalog.quotedIfNeeded(table)) (\(columns))"
            }
            var hypothetical: [String: (WorkloadCandidates.Candidate, Int64)] = [:]
            let literals = creates.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ")
            guard let rows = try? await connection.query("""
                SELECT h.indexname, hypopg_relation_size(h.indexrelid) FROM unnest(ARRAY[\(literals)]) WITH ORDINALITY s(sql, n), LATERAL hypopg_create_index(s.sql) h ORDER BY s.n
                """), rows.count == candidates.count else { continue }
            for (candidate, row) in zip(candidates, rows) { if let name = row[0] { hypothetical[name] = (candidate, Int64(row[1] ?? "0") ?? 0) } }
            let generic = try await explain(statement.query, arguments: prepared.arguments, connection: connection)
            // The generic plan, or the level that saves most.
            var best: (before: Double, after: Double, indexes: Set<String>, assumed: String?)? = generic.map { (before, $0.cost, $0.indexes, nil) }
            for (level, values) in levels.enumerated() {
                guard let b = levelsBefore[level], b > 0, let planned = try await explainCustom(values, connection: connection) else { continue }
                if best.map({ ($0.before - $0.after) / $0.before < (b - planned.cost) / b }) ?? true {
                    best = (b, planned.cost, planned.indexes, values.enumerated().map { "$\($0.offset + 1) = \($0.element)" }.joined(separator: ", "))
                }
            }
            guard let best, best.before > 0, (best.before - best.after) / best.before >= options.minSavings else { continue }
            for name in best.indexes {
                guard let (candidate, bytes) = hypothetical[name] else { continue }
                var entry = found[candidate] ?? ([], best.before, best.after, bytes, 0, 0, best.assumed)
                entry.statements.append(original.query)
                entry.weight += Double(statement.calls) * (best.before - best.after)
                entry.calls += statement.calls
                if (best.before - best.after) / best.before > (entry.before - entry.after) / entry.before {
                    entry.before = best.before; entry.after = best.after; entry.assumed = best.assumed
                }
                found[candidate] = entry
            }
        }
        if availability.hypopg { _ = try? await connection.execute("SELECT hypopg_reset(); DEALLOCATE ALL") }
        if availability.hypopg { _ = try await connection.execute("RESET plan_cache_mode") }

        var out: [IndexFinding] = []
        let age = catalog.statsAgeSeconds ?? 0
        let rateKnown = age >= options.minWriteRateAgeSeconds
        for (candidate, e) in found.sorted(by: { $0.value.weight > $1.value.weight }) {
            let savings = (e.before - e.after) / e.before
            let table = catalog.table(candidate.table)
            var finding = IndexFinding(kind: .missing, priority: savings >= 0.9 ? .high : .medium, table: candidate.table,
                                       reason: String(format: "cuts the plan cost of %d statement%@ (%lld calls) by %.0f%% (%.1f → %.1f)",
                                                      e.statements.count, e.statements.count == 1 ? "" : "s", e.calls, savings * 100, e.before, e.after),
                                       sql: createSQL(candidate))
            finding.costBefore = e.before
            finding.costAfter = e.after
            finding.estimatedBytes = e.bytes
            finding.writesPerSecond = rateKnown ? table.map { Double($0.writes) / age } : nil
            finding.statements = Array(e.statements.prefix(5))
            finding.columns = candidate.columns
            if let assumed = e.assumed {
                finding.reason += " at \(assumed) (a generic plan, which knows no parameter, costs a range over one at a third of the table)"
            }
            if let w = finding.writesPerSecond, w > 0 { finding.reason += String(format: "; the table takes %.1f writes/s, each also updating this index", w) }
            if !rateKnown {
                finding.reason += "; its write rate is too early to tell (statistics \(Int(age)) s old; a bulk load would read as thousands of writes/s)"
            }
            out.append(finding)
        }
        for (candidate, e) in heuristic.sorted(by: { $0.value.calls > $1.value.calls }) where (catalog.table(candidate.table)?.liveRows ?? 0) >= 10_000 {
            var finding = IndexFinding(kind: .missing, priority: .low, table: candidate.table,
                                       reason: "filtered, joined or sorted on in \(e.statements.count) statement(s), \(e.calls) calls; not costed (HypoPG is missing): a guess",
                                       sql: createSQL(candidate), heuristic: true)
            finding.statements = Array(e.statements.prefix(5))
            finding.columns = candidate.columns
            out.append(finding)
        }
        return out
    }

    /// Literals for the statement's parameters at each representative level (none when
    /// the generic plan is all there is to go on).
    static func representativeLevels(_ query: String, catalog: IndexCatalog, stats: inout [String: RepresentativeValues.ColumnStats],
                                     connection: PostgresConnection) async throws -> [[String]] {
        guard let parsed = try? SQLParser.parse(query).first else { return [] }
        let roles = WorkloadCandidates.analyze(parsed, catalog: catalog).parameters
        let count = ParseNode.object(["x": parsed.body]).all("ParamRef").compactMap { $0["number"]?.int }.max() ?? 0
        guard count > 0, roles.values.contains(where: { $0.op != "=" }) else { return [] }
        let types = (try await connection.query("SELECT array_to_string(parameter_types::text[], E'\\t') FROM pg_prepared_statements WHERE name = 'dbq_advice'").scalar ?? "")
            .split(separator: "\t").map(String.init)
        for role in roles.values where stats["\(role.table).\(role.column)"] == nil {
            let (schema, table) = split(role.table)
            let row = try await connection.query("""
                SELECT histogram_bounds::text, most_common_vals::text FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3
                """, [PostgresParameter(schema), PostgresParameter(table), PostgresParameter(role.column)]).first
            stats["\(role.table).\(role.column)"] = RepresentativeValues.ColumnStats(
                histogram: row?[0].map(RepresentativeValues.elements) ?? [], mostCommon: row?[1].map(RepresentativeValues.elements) ?? [])
        }
        return RepresentativeValues.assignments(count: count, roles: roles, types: types, stats: stats)
    }

    /// The prepared statement's custom plan at these values (planned anew, so it sees the
    /// hypothetical indexes made so far).
    static func explainCustom(_ values: [String], connection: PostgresConnection) async throws -> (cost: Double, indexes: Set<String>)? {
        _ = try await connection.execute("SET plan_cache_mode = force_custom_plan")
        let text = try? await connection.execute("EXPLAIN (FORMAT JSON) EXECUTE dbq_advice(\(values.joined(separator: ", ")))").scalar
        _ = try await connection.execute("SET plan_cache_mode = force_generic_plan")
        return text.flatMap(parsePlan)
    }

    static func split(_ qualified: String) -> (String, String) {
        guard let dot = qualified.firstIndex(of: ".") else { return ("public", qualified) }
        return (String(qualified[..<dot]), String(qualified[qualified.index(after: dot)...]))
    }

    static func createSQL(_ candidate: WorkloadCandidates.Candidate) -> String {
        let (schema, table) = split(candidate.table)
        let name = IndexBuildPlan.defaultName(table: table, columns: candidate.columns)
        return "CREATE INDEX CONCURRENTLY \(IndexCatalog.quotedIfNeeded(name)) ON \(IndexCatalog.quotedIfNeeded(schema)).\(IndexCatalog.quotedIfNeeded(table)) (\(candidate.columns.map(IndexCatalog.quotedIfNeeded).joined(separator: ", ")))"
    }

    /// Forgets the previous statement's hypothetical indexes and prepared statement, then
    /// prepares `query` (parameters $n allowed) and plans it generically: one round trip.
    /// Nil when it cannot be planned here.
    static func prepare(_ query: String, connection: PostgresConnection) async throws -> (plan: (cost: Double, indexes: Set<String>), arguments: String)? {
        let parameters = (try? SQLParser.parse(query).first).map { stmt in
            ParseNode.object(["x": stmt.body]).all("ParamRef").compactMap { $0["number"]?.int }.max() ?? 0
        } ?? 0
        let arguments = parameters == 0 ? "" : "(" + Array(repeating: "NULL", count: parameters).joined(separator: ", ") + ")"
        guard let text = try? await connection.execute(
            "SELECT hypopg_reset(); DEALLOCATE ALL; PREPARE dbq_advice AS \(query); EXPLAIN (FORMAT JSON) EXECUTE dbq_advice\(arguments)").scalar,
              let plan = parsePlan(text) else { return nil }
        return (plan, arguments)
    }

    /// The statement's generic plan again, prepared anew (a prepared statement keeps its
    /// cached plan, which knows nothing of the hypothetical indexes made since).
    static func explain(_ query: String, arguments: String, connection: PostgresConnection) async throws -> (cost: Double, indexes: Set<String>)? {
        guard let text = try? await connection.execute(
            "DEALLOCATE dbq_advice; PREPARE dbq_advice AS \(query); EXPLAIN (FORMAT JSON) EXECUTE dbq_advice\(arguments)").scalar else { return nil }
        return parsePlan(text)
    }

    /// EXPLAIN's JSON: the total cost and every index the plan scans.
    static func parsePlan(_ text: String) -> (cost: Double, indexes: Set<String>)? {
        guard let plan = ParseNode.json(text)?.array.first?["Plan"], let cost = plan["Total Cost"]?.double else { return nil }
        var indexes: Set<String> = []
        func walk(_ node: ParseNode) {
            if let name = node["Index Name"]?.string { indexes.insert(name) }
            for child in node["Plans"]?.array ?? [] { walk(child) }
        }
        walk(plan)
        return (cost, indexes)
    }
}
