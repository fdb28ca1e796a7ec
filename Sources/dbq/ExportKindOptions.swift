import Anonymization
import ArgumentParser
import DBQCommand
import DBQConfig
import Exports
import Foundation
import Queue

/// `dbq push export` / `dbq run export`.
struct ExportOptions: KindOptions {
    static var kind: String { ExportJob.kind }
    static var abstract: String { "Export tables (all, or chosen, or a subset by --where), masked by an anonymization policy." }

    @OptionGroup var target: TargetOptions
    @Option(help: "An anonymization policy file (YAML); read here and sent with the job. The key comes from DBQ_ANONYMIZE_KEY on the worker.")
    var policy: String?
    @Option(help: "The tables (schema.table or a name in public), comma-separated (default: all).") var tables: String?
    @Flag(help: "Every table (the default without --tables; says so explicitly).") var all = false
    @Option(name: .customLong("where"), help: "'table=SQL condition' for a subset of one table (repeatable).") var conditions: [String] = []
    @Flag(help: "With --where, also export every row the exported rows reference (foreign keys followed upward, through cycles), so every reference resolves.")
    var followReferences = false
    @Option(help: "copy (default; fastest to load back), csv (with a header) or jsonl.") var format: String?
    @Option(help: "zstd (default), gzip or none.") var codec: String?

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("codec", codec)
        fields.set("policy", try policy.map { path -> String in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read the policy file '\(path)'")
            }
            // Checked here as far as it can be without the database: every problem named by path.
            do { _ = try AnonymizationPolicy.parse(text, file: path) } catch { throw ValidationError("\(error)") }
            return text
        })
        if let format, RowFormat(rawValue: format) == nil {
            throw ValidationError("--format '\(format)' is not a format; use copy, csv or jsonl")
        }
        fields.set("format", format)
        if all && tables != nil { throw ValidationError("--all and --tables exclude each other: name tables, or take all") }
        if all { fields.set("tables", JSONValue.array([])) }
        fields.set("followReferences", flag: followReferences)
        fields.set(list: "tables", tables)
        fields.set("conditions", try OptionLists.conditions(conditions).map { JSONValue.object($0.mapValues(JSONValue.string)) })
        return try fields.checked(kind: Self.kind, configuration)
    }
}

/// `dbq push import` / `dbq run import`.
struct ImportOptions: KindOptions {
    static var kind: String { ImportJob.kind }
    static var abstract: String { "Load an export into a configured database in one transaction." }

    @OptionGroup var target: TargetOptions
    @Option(help: "The export to load: id, job id, prefix or 'latest' (default).") var export: String?
    @Option(help: "The database whose exports 'latest' and a prefix look at (needed when the storage holds exports of several).") var source: String?
    @Option(help: "The tables (schema.table or a name in public), comma-separated (default: all of the export's).") var tables: String?
    @Option(help: "insert (default; fails on existing keys), upsert, skip or replace.") var mode: String?
    @Flag(help: "Run the export's schema.sql first (an empty database).") var createSchema = false
    @Flag(help: "Snapshot the tables the import loads first (the result names the snapshot; dbq push rollback --snapshot ID --confirm loads it back).")
    var snapshot = false
    @Flag(help: "Report rows to insert, update and skip; change nothing.") var dryRun = false

    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        var fields = PayloadFields(base, target)
        fields.set("export", export)
        fields.set("source", source)
        if let mode, !["insert", "upsert", "skip", "replace"].contains(mode) {
            throw ValidationError("--mode '\(mode)' is not a mode; use insert, upsert, skip or replace")
        }
        fields.set("mode", mode)
        fields.set("createSchema", flag: createSchema)
        fields.set("dryRun", flag: dryRun)
        fields.set("snapshot", flag: snapshot)
        fields.set(list: "tables", tables)
        return try fields.checked(kind: Self.kind, configuration)
    }
}
