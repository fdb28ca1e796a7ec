import Anonymization
import ArgumentParser
import DBQCommand
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
                let connection = try await ExportScopeOptions.connect(database, config: config, application: "dbq anonymize scan")
                defer { Task { await connection.close() } }
                let (result, catalog) = try await PersonalDataScan.scan(connection, tables: OptionLists.tables(tables), sample: sample)
                let personal = result.reduce(0) { $0 + $1.columns.filter(\.suggestion.personal).count }
                let header = """
                    Starting policy written by 'dbq anonymize scan --database \(database)' on \(ISO8601DateFormatter().string(from: Date())),
                    from up to \(sample) rows per table (sampled across the pages of large tables): \(personal) column(s) look personal. Review every line:
                    a column the scan missed stays readable. Check it with: dbq export plan --database \(database) --policy FILE
                    """
                let text = PersonalDataScanner.policy(result, header: header)
                // The written policy must be one the export accepts for this very database.
                do {
                    _ = try AnonymizationPolicy.parse(text, file: "scan").plan(for: catalog)
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
