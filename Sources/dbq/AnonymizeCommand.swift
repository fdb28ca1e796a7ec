import Anonymization
import ArgumentParser
import Exports
import Foundation
import PostgresClient

struct AnonymizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonymize", abstract: "Write a starting anonymization policy from a database; list the masking rules.",
        subcommands: [Scan.self, Rules.self])

    struct Scan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "scan",
            abstract: "Sample the tables and write a strict starting policy: personal-looking columns get a rule, the rest keep, each with its reason.",
            discussion: """
                Columns whose names or sampled values look personal (email, phone, name, address, city, zip, \
                birth date, national id, card or IBAN patterns, free text quoting emails or phones) get a rule \
                that fits their type (and keeps unique columns unique); every other column gets keep. Read it, \
                change what you know better, and pass it to 'dbq export plan --policy' before an export.
                """)
        @OptionGroup var config: ConfigOptions
        @Option(help: "The configured database.") var database: String
        @Option(help: "The tables (schema.table or a name in public), comma-separated (default: all).") var tables: String?
        @Option(help: "Rows sampled per table.") var sample: Int = 1000
        @Option(name: .shortAndLong, help: "Write the policy to this file (default: standard output).") var output: String?
        @Flag(help: "Overwrite --output if it exists.") var force = false

        func validate() throws {
            guard (1...100_000).contains(sample) else { throw ValidationError("--sample must be from 1 to 100000 rows, not \(sample)") }
            if let output, !force, FileManager.default.fileExists(atPath: output) {
                throw ValidationError("'\(output)' exists; pass --force to overwrite it, or choose another --output")
            }
        }

        func run() async throws {
            try await reportingFailures {
                let scope = try ExportScopeOptions.parse(["--database", database] + (config.path.map { ["--config", $0] } ?? []))
                let connection = try await scope.connect("dbq anonymize scan")
                defer { Task { await connection.close() } }
                _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                let full = try await ExportCatalogQuery.load(connection)
                let selection = try ExportSelection.resolve(full, tables: OptionLists.tables(tables), conditions: nil, followReferences: false)
                var result: [(table: String, columns: [(name: String, suggestion: PersonalDataScanner.Suggestion)])] = []
                for table in selection.catalog.dependencyOrder {
                    let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
                    let list = try table.columns.map { "\(try PostgresIdentifier.quoted($0.name))::text" }.joined(separator: ", ")
                    // Large tables are sampled across their pages (TABLESAMPLE SYSTEM), not from their start.
                    let estimate = try await connection.query("SELECT reltuples FROM pg_class WHERE oid = $1::regclass",
                                                              [PostgresParameter(qualified)]).scalar.flatMap(Double.init) ?? -1
                    let sampling = estimate > Double(sample) * 10
                        ? String(format: " TABLESAMPLE SYSTEM (%.4f)", min(100, Double(sample) * 10 / estimate * 100)) : ""
                    let rows = try await connection.query("SELECT \(list) FROM ONLY \(qualified)\(sampling) LIMIT \(sample)")
                    var columns: [(String, PersonalDataScanner.Suggestion)] = []
                    for (i, column) in table.columns.enumerated() {
                        let unique = table.uniqueKeys.contains { $0 == [column.name] }
                        let inReference = full.foreignKeys.contains { fk in
                            (fk.table == table.qualifiedName && fk.columns.contains(column.name))
                                || (fk.referenced == table.qualifiedName && fk.referencedColumns.contains(column.name))
                        }
                        let samples = rows.compactMap { $0[i] }
                        columns.append((column.name, PersonalDataScanner.suggest(table: table.qualifiedName, column: column, unique: unique,
                                                                                 inReference: inReference, samples: samples)))
                    }
                    result.append((table.qualifiedName, columns))
                }
                _ = try? await connection.execute("ROLLBACK")
                let personal = result.reduce(0) { $0 + $1.columns.filter(\.suggestion.personal).count }
                let header = """
                    Starting policy written by 'dbq anonymize scan --database \(database)' on \(ISO8601DateFormatter().string(from: Date())),
                    from up to \(sample) rows per table (sampled across the pages of large tables): \(personal) column(s) look personal. Review every line:
                    a column the scan missed stays readable. Check it with: dbq export plan --database \(database) --policy FILE
                    """
                let text = PersonalDataScanner.policy(result, header: header)
                // The written policy must be one the export accepts for this very database.
                do {
                    _ = try AnonymizationPolicy.parse(text, file: "scan").plan(for: selection.catalog)
                } catch {
                    throw ValidationError("the scan wrote a policy the export would refuse (\(error)); please report this")
                }
                if let output {
                    try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
                    FileHandle.standardError.write(Data("dbq: wrote \(output): \(result.count) table(s), \(personal) personal column(s)\n".utf8))
                } else {
                    print(text, terminator: "")
                }
            }
        }
    }

    struct Rules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rules", abstract: "The masking rules a policy can use.")
        func run() async throws {
            for rule in RuleRegistry.rules {
                let kinds = rule.accepts.count == ValueKind.allCases.count ? "any column" : rule.accepts.map(\.rawValue).sorted().joined(separator: ", ")
                print(rule.name.padding(toLength: 11, withPad: " ", startingAt: 0) + rule.summary + " [" + kinds + "]")
            }
        }
    }
}
