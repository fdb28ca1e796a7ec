import Anonymization
import DatabaseJobs
import Foundation
import PostgresClient
import Queue

/// What an export would take, without taking it (`dbq export plan`): the tables in
/// dependency order with their rows (the planner's estimate for whole tables and `--where`
/// subsets, exact for rows chosen by following references), and every column's rule.
public struct ExportPlan: Encodable, Sendable {
    public struct Table: Encodable, Sendable {
        public var name: String
        public var rows: Int64?
        public var rowsExact: Bool
        public var condition: String?
        public var kAnonymity: String?
        public var columns: [ExportManifest.Column]
    }
    public var database: String
    public var serverVersion: String
    public var policyDigest: String?
    public var strict: Bool?
    public var tables: [Table]

    /// The plan, read in one snapshot on `connection` (rolled back when done). A `--where`
    /// PostgreSQL refuses is a permanent error naming the table.
    public static func plan(_ payload: ExportJob.Payload, policy: AnonymizationPolicy?, connection: PostgresConnection) async throws -> ExportPlan {
        let prepared = try await ExportJob.prepare(payload, policy: policy, connection: connection)
        var tables: [Table] = []
        for table in prepared.selection.catalog.dependencyOrder {
            let name = table.qualifiedName
            let rows = prepared.selection.rows[name] ?? .all
            let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
            var estimate: Int64?
            var exact = false
            var condition: String?
            switch rows {
            case .all:
                estimate = try await connection.query("SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass",
                                                      [PostgresParameter(qualified)]).scalar.flatMap { Int64($0) }.flatMap { $0 < 0 ? nil : $0 }
            case .condition(let c) where !prepared.selection.followsReferences:
                condition = c
                do {
                    estimate = try await plannedRows(connection, "SELECT 1 FROM ONLY \(qualified) WHERE \(c)")
                } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true {
                    throw JobError.permanent("--where for table \(name) does not work in database '\(payload.database)': \(error.message)")
                }
            case .condition(let c):
                condition = c + " (and rows referenced)"
                estimate = prepared.chosenRows[name]; exact = true
            case .referenced:
                condition = "rows referenced by exported rows"
                estimate = prepared.chosenRows[name]; exact = true
            }
            let k = prepared.plan.kAnonymity[name].map { "\($0.columns.joined(separator: ", ")) at least \($0.k) times (\($0.mode.rawValue))" }
            tables.append(Table(name: name, rows: estimate, rowsExact: exact, condition: condition, kAnonymity: k,
                                columns: (prepared.plan.tables[name] ?? []).map {
                                    .init(name: $0.name, type: table.column($0.name)?.type ?? "", rule: $0.rule.identity, source: $0.source)
                                }))
        }
        _ = try? await connection.execute("ROLLBACK")
        return ExportPlan(database: payload.database, serverVersion: prepared.serverVersion, policyDigest: policy?.digest,
                          strict: policy?.strict, tables: tables)
    }

    /// The planner's row estimate for `sql`.
    static func plannedRows(_ connection: PostgresConnection, _ sql: String) async throws -> Int64? {
        let text = try await connection.query("EXPLAIN (FORMAT JSON) " + sql).scalar ?? ""
        guard let data = text.data(using: .utf8), let array = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
              let plan = array.first?["Plan"] as? [String: Any], let rows = plan["Plan Rows"] as? NSNumber else { return nil }
        return rows.int64Value
    }
}
