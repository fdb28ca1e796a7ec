import Anonymization
import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
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
        try await Self.connect(database, config: config, application: application)
    }

    static func connect(_ database: String, config: ConfigOptions, application: String) async throws -> PostgresConnection {
        let env = JobEnvironment(configuration: try config.load(), locks: MemoryLocks(), logger: makeLogger("dbq.export"))
        return try await DatabaseScope.connect(try env.database(database), database: database, application: application, logger: env.logger)
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
                let plan = try await ExportPlan.plan(try scope.payload(policy: nil), policy: parsed, connection: connection)
                let tables = plan.tables
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
    }

}
