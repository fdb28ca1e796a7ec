import Anonymization
import ArgumentParser
import Backups
import DatabaseJobs
import Exports
import Foundation
import PostgresClient
import Queue

/// The options that say what an export takes: shared by `dbq export plan` and
/// `dbq anonymize scan`.
struct ExportScopeOptions: ParsableArguments {
    @OptionGroup var config: ConfigOptions
    @Option(help: "The configured database.") var database: String
    @Option(help: "The tables (schema.table or a name in public), comma-separated (default: all).") var tables: String?
    @Option(name: .customLong("where"), help: "'table=SQL condition' for a subset of one table (repeatable).") var conditions: [String] = []
    @Flag(help: "With --where, also take every row the chosen rows reference.") var followReferences = false

    func payload(policy: String?) throws -> ExportJob.Payload {
        ExportJob.Payload(database: database, tables: OptionLists.tables(tables), conditions: try OptionLists.conditions(conditions),
                          policy: policy, followReferences: followReferences)
    }

    /// A connection to the database, named in errors by its configured name.
    func connect(_ application: String) async throws -> PostgresConnection {
        let env = JobEnvironment(configuration: try config.load(), locks: MemoryLocks(), logger: makeLogger("dbq.export"))
        let url = try env.database(database)
        do {
            return try await PostgresConnection.connect(url.raw, logger: env.logger, applicationName: application)
        } catch {
            throw DatabaseScope.classifyConnect(error, database: database)
        }
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Plan an export without running it (push one with 'dbq push export').",
        subcommands: [Plan.self])

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan",
            abstract: "The tables an export would take, in dependency order, their rows, and each column with its rule.",
            discussion: """
                Reads the catalog in one snapshot and checks the policy against it as the export would: \
                every problem is named by its path. Rows are the planner's estimate for whole tables and \
                --where subsets, and exact for rows chosen by --follow-references. Nothing is exported.
                """)
        @OptionGroup var scope: ExportScopeOptions
        @Option(help: "An anonymization policy file (YAML).") var policy: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                var parsed: AnonymizationPolicy?
                if let policy {
                    guard let text = try? String(contentsOfFile: policy, encoding: .utf8) else {
                        throw ValidationError("cannot read the policy file '\(policy)'")
                    }
                    do { parsed = try AnonymizationPolicy.parse(text, file: policy) } catch { throw ValidationError("\(error)") }
                }
                let connection = try await scope.connect("dbq export plan")
                defer { Task { await connection.close() } }
                let prepared = try await ExportJob.prepare(try scope.payload(policy: nil), policy: parsed, connection: connection)
                var tables: [PlanJSON.Table] = []
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
                            estimate = try await Self.plannedRows(connection, "SELECT 1 FROM ONLY \(qualified) WHERE \(c)")
                        } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true {
                            throw ValidationError("--where for table \(name) does not work in database '\(scope.database)': \(error.message)")
                        }
                    case .condition(let c):
                        condition = c + " (and rows referenced)"
                        estimate = prepared.chosenRows[name]; exact = true
                    case .referenced:
                        condition = "rows referenced by exported rows"
                        estimate = prepared.chosenRows[name]; exact = true
                    }
                    let k = prepared.plan.kAnonymity[name].map { "\($0.columns.joined(separator: ", ")) at least \($0.k) times (\($0.mode.rawValue))" }
                    tables.append(.init(name: name, rows: estimate, rowsExact: exact, condition: condition, kAnonymity: k,
                                        columns: (prepared.plan.tables[name] ?? []).map {
                                            .init(name: $0.name, type: table.column($0.name)?.type ?? "", rule: $0.rule.identity, source: $0.source)
                                        }))
                }
                _ = try? await connection.execute("ROLLBACK")
                let plan = PlanJSON(database: scope.database, serverVersion: prepared.serverVersion, policyDigest: parsed?.digest,
                                    strict: parsed?.strict, tables: tables)
                if json {
                    try printManifestJSON(plan)
                    return
                }
                print("export plan: database '\(plan.database)' (PostgreSQL \(plan.serverVersion)), \(tables.count) table(s), "
                      + (parsed.map { "policy \($0.digest.prefix(12))… (strict: \($0.strict))" } ?? "no policy (nothing masked)"))
                for (i, t) in tables.enumerated() {
                    let rows = t.rows.map { (t.rowsExact ? "" : "~") + String($0) } ?? "? (never analyzed)"
                    print("\(i + 1). \(t.name)  \(rows) rows" + (t.condition.map { "  where \($0)" } ?? ""))
                    if let k = t.kAnonymity { print("     k-anonymity: \(k)") }
                    let width = t.columns.map { $0.name.count + $0.type.count + 1 }.max() ?? 0
                    for c in t.columns {
                        let head = "\(c.name) \(c.type)"
                        print("     " + head.padding(toLength: max(width, head.count), withPad: " ", startingAt: 0) + "  \(c.rule)"
                              + (c.source == "no policy" ? "" : "  (\(c.source))"))
                    }
                }
            }
        }

        static func plannedRows(_ connection: PostgresConnection, _ sql: String) async throws -> Int64? {
            let text = try await connection.query("EXPLAIN (FORMAT JSON) " + sql).scalar ?? ""
            guard let data = text.data(using: .utf8), let array = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
                  let plan = array.first?["Plan"] as? [String: Any], let rows = plan["Plan Rows"] as? NSNumber else { return nil }
            return rows.int64Value
        }
    }

    struct PlanJSON: Encodable {
        struct Table: Encodable {
            var name: String
            var rows: Int64?
            var rowsExact: Bool
            var condition: String?
            var kAnonymity: String?
            var columns: [ExportManifest.Column]
        }
        var database: String
        var serverVersion: String
        var policyDigest: String?
        var strict: Bool?
        var tables: [Table]
    }
}
