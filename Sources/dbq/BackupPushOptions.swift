import Anonymization
import ArgumentParser
import Backups
import DatabaseJobs
import DBQConfig
import Foundation
import Queue

/// The options of `dbq push` that fill the payload of the backup kinds, so that nobody
/// writes JSON for a backup. Each applies to some kinds; given for another, it is refused.
struct BackupPushOptions: ParsableArguments {
    @Option(help: "backup, restore, verify-backup, retention, export, import, snapshot, snapshot-retention: the configured database.")
    var database: String?
    @Option(help: "The same kinds: the configured storage (default: 'archive', the only one, or the local default).")
    var storage: String?
    @Option(help: "backup, export, snapshot: zstd (default), gzip or none.")
    var codec: String?
    @Option(help: "backup: compression level (zstd 1-19, default 1; gzip 1-9, default 6).")
    var level: Int?
    @Option(help: "restore, verify-backup: backup id, job id or prefix (default: latest).")
    var backup: String?
    @Option(help: "restore: the database to restore into (a configured name, or a name on the source's server).")
    var target: String?
    @Flag(help: "restore: create the target database first.")
    var create = false
    @Flag(help: "restore: drop the target's objects before recreating them.")
    var clean = false
    @Flag(help: "restore: allow restoring over the source database itself.")
    var force = false
    @Option(help: "retention, snapshot-retention: keep the newest N backups (snapshots).")
    var keepLast: Int?
    @Option(help: "retention: keep the newest backup of each of the last N days.")
    var daily: Int?
    @Option(help: "retention: … of each of the last N ISO weeks.")
    var weekly: Int?
    @Option(help: "retention: … of each of the last N months.")
    var monthly: Int?
    @Option(help: "retention: … of each of the last N years.")
    var yearly: Int?
    @Option(help: "retention: never delete backups younger than this (e.g. 1h, 2d).")
    var minAge: String?
    @Option(help: "retention: remove unfinished uploads and manifest-less data older than this (default 1d).")
    var grace: String?
    @Option(help: "export: an anonymization policy file (YAML); read here and sent with the job. The key comes from DBQ_ANONYMIZE_KEY on the worker.")
    var policy: String?
    @Option(help: "export, import, snapshot: the tables (schema.table or a name in public), comma-separated (export, import default: all).")
    var tables: String?
    @Option(name: .customLong("where"), help: "export: 'table=SQL condition' for a subset of one table (repeatable).")
    var conditions: [String] = []
    @Flag(help: "export: every table (the default without --tables; says so explicitly).")
    var all = false
    @Option(help: "export: copy (default; fastest to load back), csv (with a header) or jsonl.")
    var format: String?
    @Flag(help: "export: with --where, also export every row the exported rows reference (foreign keys followed upward, through cycles), so every reference resolves.")
    var followReferences = false
    @Option(help: "import: the export to load: id, job id, prefix or 'latest' (default).")
    var export: String?
    @Option(help: "import: insert (default; fails on existing keys), upsert, skip or replace.")
    var mode: String?
    @Flag(help: "import: run the export's schema.sql first (an empty database).")
    var createSchema = false
    @Flag(help: "import: report rows to insert, update and skip; snapshot-retention: what would go. Changes nothing.")
    var dryRun = false
    @Option(help: "snapshot: every table of this schema (instead of --tables).")
    var schema: String?
    @Option(help: "snapshot: a note kept in the manifest (e.g. 'before 0042_split_names').")
    var label: String?
    @Flag(help: "import: snapshot the tables the import loads first (the result names the snapshot; dbq push rollback --snapshot ID --confirm loads it back).")
    var snapshot = false
    @Option(help: "snapshot-retention: remove snapshots older than this (e.g. 14d); the newest is always kept.")
    var maxAge: String?

    /// The kinds that work on a configured database (and a storage).
    static let databaseKinds: Set<String> = ["backup", "restore", "verify-backup", "retention", "export", "import",
                                             "snapshot", "snapshot-retention"]

    static let kindsByOption: [String: Set<String>] = [
        "database": Self.databaseKinds, "storage": Self.databaseKinds,
        "export": ["import"], "mode": ["import"], "create-schema": ["import"], "dry-run": ["import", "snapshot-retention"],
        "codec": ["backup", "export", "snapshot"], "level": ["backup"],
        "schema": ["snapshot"], "label": ["snapshot"], "snapshot": ["import"], "max-age": ["snapshot-retention"],
        "policy": ["export"], "tables": ["export", "import", "snapshot"], "where": ["export"], "format": ["export"], "follow-references": ["export"], "all": ["export"],
        "backup": ["restore", "verify-backup"],
        "target": ["restore"], "create": ["restore"], "clean": ["restore"], "force": ["restore"],
        "keep-last": ["retention", "snapshot-retention"], "daily": ["retention"], "weekly": ["retention"], "monthly": ["retention"],
        "yearly": ["retention"], "min-age": ["retention"], "grace": ["retention"],
    ]

    /// The payload fields these options give, each checked against `kind`.
    func fields(for kind: String) throws -> [String: JSONValue] {
        var given: [(option: String, field: String, value: JSONValue)] = []
        func add(_ option: String, _ field: String, _ value: JSONValue?) { if let value { given.append((option, field, value)) } }
        add("database", "database", database.map(JSONValue.string))
        add("storage", "storage", storage.map(JSONValue.string))
        add("codec", "codec", codec.map(JSONValue.string))
        add("level", "level", level.map { .number(Double($0)) })
        add("backup", "backup", backup.map(JSONValue.string))
        add("target", "target", target.map(JSONValue.string))
        add("create", "create", create ? .bool(true) : nil)
        add("clean", "clean", clean ? .bool(true) : nil)
        add("force", "force", force ? .bool(true) : nil)
        add("keep-last", "keepLast", keepLast.map { .number(Double($0)) })
        add("daily", "daily", daily.map { .number(Double($0)) })
        add("weekly", "weekly", weekly.map { .number(Double($0)) })
        add("monthly", "monthly", monthly.map { .number(Double($0)) })
        add("yearly", "yearly", yearly.map { .number(Double($0)) })
        add("min-age", "minAgeSeconds", try minAge.map { .number(try parseDuration($0, option: "--min-age").seconds) })
        add("grace", "graceSeconds", try grace.map { .number(try parseDuration($0, option: "--grace").seconds) })
        // The kind first: a policy file is read only for the kind that takes one.
        if policy != nil, kind != "export" { throw ValidationError("--policy applies to export, not to \(kind)") }
        add("policy", "policy", try policy.map { path in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read the policy file '\(path)'")
            }
            // Checked here as far as it can be without the database: every problem named by path.
            do { _ = try AnonymizationPolicy.parse(text, file: path) } catch { throw ValidationError("\(error)") }
            return .string(text)
        })
        add("export", "export", export.map(JSONValue.string))
        if let format, RowFormat(rawValue: format) == nil {
            throw ValidationError("--format '\(format)' is not a format; use copy, csv or jsonl")
        }
        add("format", "format", format.map(JSONValue.string))
        if all && tables != nil { throw ValidationError("--all and --tables exclude each other: name tables, or take all") }
        add("all", "tables", all ? .array([]) : nil)
        add("follow-references", "followReferences", followReferences ? .bool(true) : nil)
        if let mode, !["insert", "upsert", "skip", "replace"].contains(mode) {
            throw ValidationError("--mode '\(mode)' is not a mode; use insert, upsert, skip or replace")
        }
        add("mode", "mode", mode.map(JSONValue.string))
        add("create-schema", "createSchema", createSchema ? .bool(true) : nil)
        add("dry-run", "dryRun", dryRun ? .bool(true) : nil)
        add("schema", "schema", schema.map(JSONValue.string))
        add("label", "label", label.map(JSONValue.string))
        add("snapshot", "snapshot", snapshot ? .bool(true) : nil)
        add("max-age", "maxAgeSeconds", try maxAge.map { .number(try parseDuration($0, option: "--max-age").seconds) })
        if schema != nil && tables != nil { throw ValidationError("--schema and --tables exclude each other: name tables, or take a schema's") }
        add("tables", "tables", Self.tableList(tables).map { .array($0.map(JSONValue.string)) })
        if let map = try Self.conditionMap(conditions) { add("where", "conditions", .object(map.mapValues(JSONValue.string))) }
        var fields: [String: JSONValue] = [:]
        for (option, field, value) in given {
            let kinds = Self.kindsByOption[option] ?? []
            guard kinds.contains(kind) else {
                throw ValidationError("--\(option) applies to \(kinds.sorted().joined(separator: ", ")), not to \(kind)")
            }
            fields[field] = value
        }
        return fields
    }

    /// `a, b` → ["a", "b"].
    static func tableList(_ text: String?) -> [String]? {
        text.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// `table=condition` entries → table: condition; nil when none.
    static func conditionMap(_ entries: [String]) throws -> [String: String]? {
        guard !entries.isEmpty else { return nil }
        var map: [String: String] = [:]
        for entry in entries {
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw ValidationError("--where '\(entry)' must be TABLE=CONDITION (e.g. orders=created_at > now() - interval '30 days')")
            }
            map[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return map
    }

    /// Merges the fields into the payload and checks what a pusher can check here: the
    /// required fields, and the database and storage names against this machine's
    /// configuration (when it has one), so a misspelt name fails now, not on a worker.
    func apply(to payload: JSONValue, kind: String, configuration: DBQConfiguration?) throws -> JSONValue {
        let fields = try fields(for: kind)
        guard Self.databaseKinds.contains(kind) else { return payload }
        guard case .object(var object) = payload else { return payload }
        object.merge(fields) { $1 }
        guard case .string(let database)? = object["database"] else {
            throw ValidationError("\(kind) needs --database NAME (a database of dbq.yaml)")
        }
        if kind == "restore", object["target"] == nil {
            throw ValidationError("restore needs --target DATABASE: a configured database, or a new name with --create")
        }
        if kind == "snapshot", object["tables"] == nil, object["schema"] == nil {
            throw ValidationError("snapshot needs --tables a,b or --schema NAME (the tables a rollback will replace)")
        }
        if kind == "snapshot-retention", object["keepLast"] == nil, object["maxAgeSeconds"] == nil {
            throw ValidationError("snapshot-retention needs --keep-last N or --max-age DURATION (or both)")
        }
        if let configuration, !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        if let configuration, !configuration.databases.isEmpty || !configuration.storages.isEmpty {
            try Self.checkStorage(object["storage"], in: configuration)
        }
        return .object(object)
    }

    /// The storage a job names (or the default it will use) exists in `configuration`;
    /// the same rule the worker applies (`JobEnvironment.store`).
    static func checkStorage(_ value: JSONValue?, in configuration: DBQConfiguration) throws {
        let known = configuration.storages.keys.sorted()
        if case .string(let name)? = value {
            guard configuration.storages[name] == nil else { return }
            throw ValidationError(known.isEmpty
                ? "unknown storage '\(name)': dbq.yaml configures no storages (jobs use the embedded \(DBQConfiguration.embeddedStorageURL)); drop --storage or add '\(name)' under storages:"
                : "unknown storage '\(name)'; configured: \(known.joined(separator: ", "))")
        }
        if value == nil, !known.isEmpty, configuration.defaultStorageName() == nil {
            throw ValidationError("several storages are configured (\(known.joined(separator: ", "))) and none is named 'archive'; say which with --storage")
        }
    }
}
