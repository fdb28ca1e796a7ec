import ArgumentParser
import DBQCommand
import DBQConfig
import Foundation
import Queue

/// A payload as a kind's options build it: the object of `--payload` (or `{}`), with each
/// option given set over it. The kinds whose fields are all optional on the command line
/// (backup, restore, export, …) build theirs this way, so `--payload` and the options mix.
struct PayloadFields {
    private(set) var object: [String: JSONValue]

    init(_ base: [String: JSONValue]?) { object = base ?? [:] }

    /// The base with the target's database and storage set over it.
    init(_ base: [String: JSONValue]?, _ target: TargetOptions) {
        object = base ?? [:]
        set("database", target.database)
        set("storage", target.storage)
    }

    mutating func set(_ field: String, _ value: JSONValue?) {
        if let value { object[field] = value }
    }
    mutating func set(_ field: String, _ value: String?) { set(field, value.map(JSONValue.string)) }
    mutating func set(_ field: String, _ value: Int?) { set(field, value.map { JSONValue.number(Double($0)) }) }
    mutating func set(_ field: String, _ value: Double?) { set(field, value.map(JSONValue.number)) }
    /// A flag: set when given, left as the base has it otherwise.
    mutating func set(_ field: String, flag: Bool) { if flag { object[field] = .bool(true) } }

    /// A comma-separated list option (`a, b`) as an array.
    mutating func set(list field: String, _ text: String?) {
        set(field, OptionLists.tables(text).map { JSONValue.array($0.map(JSONValue.string)) })
    }

    func has(_ field: String) -> Bool { object[field] != nil && object[field] != .null }

    /// The configured database the payload names: required, and known to `configuration`
    /// when it configures any (a misspelt name fails here, not on a worker); and the
    /// storage it names (or the default it will use), by the rule the worker applies.
    func checkTarget(kind: String, _ configuration: DBQConfiguration) throws {
        guard case .string(let database)? = object["database"] else {
            throw ValidationError("\(kind) needs --database NAME (a database of dbq.yaml)")
        }
        if !configuration.databases.isEmpty || database.contains("://"), configuration.databases[database] == nil {
            throw ValidationError(configuration.unknownDatabase(database))
        }
        if !configuration.databases.isEmpty || !configuration.storages.isEmpty {
            try StorageCheck.check(object["storage"], in: configuration)
        }
    }

    /// The payload, once `checkTarget` passes.
    func checked(kind: String, _ configuration: DBQConfiguration) throws -> JSONValue {
        try checkTarget(kind: kind, configuration)
        return .object(object)
    }
}

/// `--database` and `--storage`: where a job that reads or writes artefacts works.
struct TargetOptions: ParsableArguments {
    @Option(help: "The configured database.") var database: String?
    @Option(help: "The configured storage (default: 'archive', the only one, or the local default).") var storage: String?
}

/// The storage a job names (or the default it will use) exists in the configuration: the
/// rule `JobEnvironment.store` applies on the worker, checked before anything is queued.
enum StorageCheck {
    static func check(_ value: JSONValue?, in configuration: DBQConfiguration) throws {
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

/// Parsing of the list-shaped options several kinds take.
enum OptionLists {
    /// `a, b` → ["a", "b"].
    static func tables(_ text: String?) -> [String]? {
        text.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// `table=condition` entries → table: condition; nil when none.
    static func conditions(_ entries: [String]) throws -> [String: String]? {
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
}

/// `--payload` and `--payload-file`: a kind's payload as JSON, under its options.
struct PayloadInput: ParsableArguments {
    @Option(help: "The payload as JSON; the job options are set over it.")
    var payload: String?

    @Option(help: "Read the payload (JSON) from this file.")
    var payloadFile: String?

    func validate() throws {
        if payload != nil && payloadFile != nil { throw ValidationError("use --payload or --payload-file, not both") }
    }

    /// The payload's object, or nil when neither option is given.
    func object() throws -> [String: JSONValue]? {
        guard let text = try text() else { return nil }
        let value: JSONValue
        do { value = try JSONValue(json: text) } catch { throw ValidationError("the payload is not valid JSON: \(JSONErrorText.describe(error))") }
        guard case .object(let object) = value else { throw ValidationError("the payload must be a JSON object ({\"database\": \"main\"})") }
        return object
    }

    func text() throws -> String? {
        if let payloadFile {
            guard let data = FileManager.default.contents(atPath: payloadFile) else {
                throw ValidationError("cannot read payload file '\(payloadFile)'")
            }
            return String(decoding: data, as: UTF8.self)
        }
        return payload
    }
}
