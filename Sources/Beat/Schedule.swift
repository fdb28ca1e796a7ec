import DBQSupport
import Foundation
import Queue
import Yams

/// One recurring job of the schedule file.
public struct ScheduleEntry: Sendable, Equatable {
    public var name: String
    public var cron: CronExpression
    public var zone: TimeZone
    public var kind: String
    public var payload: JSONValue
    public var queue: String
    public var priority: Int
    public var catchUp: CatchUp
    /// Skip a slot while the entry's previous job is still queued or running.
    public var skipIfRunning: Bool
    /// How long without a success is an alarm (nil: never).
    public var alertAfter: TimeInterval?
}

/// The schedule file (`jobs/schedule.yaml` by default):
///
/// ```yaml
/// entries:
///   - name: nightly-backup
///     cron: "0 2 * * *"          # 5 fields, or 6 with seconds first, or @daily…
///     timezone: Europe/Berlin     # IANA name; default UTC
///     kind: backup
///     payload: {database: main}
///     queue: default              # default: default
///     priority: 5                 # 0–9, default 5
///     catch_up: once              # skip | once | all; default once
///     catch_up_limit: 100         # with all: at most this many missed slots
///     overlap: skip               # skip | allow; default skip
///     alert_after: 26h            # no success for this long is an alarm
/// ```
public struct Schedule: Sendable, Equatable {
    public var entries: [ScheduleEntry]

    /// Names the schedule for its leader lock: beats of the same schedule share one
    /// leader; different schedules on one Redis lead independently. Derived from the
    /// entries' names and queues (where their state lives), so editing a cron line
    /// keeps the identity.
    public var identity: String {
        String(FNV1a.hash(entries.map { "\($0.queue)/\($0.name)" }.sorted().joined(separator: ",").utf8), radix: 16)
    }

    static let entryKeys: Set<String> = ["name", "cron", "timezone", "kind", "payload", "queue", "priority", "catch_up",
                                         "catch_up_limit", "overlap", "alert_after"]

    /// Reads and checks a schedule file; every problem is named with its place.
    public static func load(path: String, registry: JobRegistry? = nil) throws(ScheduleError) -> Schedule {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScheduleError(file: path, problems: ["cannot read the file (does it exist?)"])
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path, registry: registry)
    }

    public static func parse(_ text: String, file: String, registry: JobRegistry? = nil) throws(ScheduleError) -> Schedule {
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ScheduleError(file: file, problems: ["not valid YAML: \(error)"])
        }
        guard let root = document as? [String: Any] else {
            throw ScheduleError(file: file, problems: ["the top level must be a mapping with 'entries:'"])
        }
        var problems: [String] = []
        for key in root.keys where key != "entries" { problems.append("unknown key '\(key)' at the top level (expected 'entries')") }
        guard let list = root["entries"] as? [Any] else {
            throw ScheduleError(file: file, problems: problems + ["'entries' must be a list of entries"])
        }
        var entries: [ScheduleEntry] = []
        var names = Set<String>()
        for (index, item) in list.enumerated() {
            guard let fields = item as? [String: Any] else {
                problems.append("entries[\(index)]: must be a mapping")
                continue
            }
            let label = "entries[\(index)]" + ((fields["name"] as? String).map { " (\($0))" } ?? "")
            var bad = false
            func problem(_ field: String, _ message: String) {
                problems.append("\(label).\(field): \(message)")
                bad = true
            }
            for key in fields.keys.sorted() where !entryKeys.contains(key) {
                problem(key, "unknown key (expected one of: \(entryKeys.sorted().joined(separator: ", ")))")
            }
            let name = fields["name"] as? String ?? ""
            if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
                problem("name", "must be 1+ letters, digits, '-', '_' or '.'")
            } else if !names.insert(name).inserted {
                problem("name", "'\(name)' is used twice")
            }
            var cron: CronExpression?
            if let text = fields["cron"] as? String {
                do { cron = try CronExpression(text) } catch { problem("cron", error.description) }
            } else {
                problem("cron", "is missing (e.g. \"0 2 * * *\")")
            }
            var zone = TimeZone(identifier: "UTC")!
            if let tz = fields["timezone"] {
                if let id = tz as? String, let found = TimeZone(identifier: id) { zone = found } else {
                    problem("timezone", "'\(tz)' is not an IANA time zone name (e.g. Europe/Berlin)")
                }
            }
            let kind = fields["kind"] as? String ?? ""
            if kind.isEmpty { problem("kind", "is missing") }
            var payload = JSONValue.object([:])
            if let raw = fields["payload"] {
                if let value = Self.json(raw) { payload = value } else { problem("payload", "must be a mapping of JSON-like values") }
            }
            let queue = (fields["queue"] as? String) ?? "default"
            if !QueueName.isValid(queue) { problem("queue", "'\(queue)' is not a valid queue name") }
            let priority = (fields["priority"] as? Int) ?? 5
            if !JobEnvelope.priorities.contains(priority) || (fields["priority"] != nil && !(fields["priority"] is Int)) {
                problem("priority", "must be a number from 0 to 9")
            }
            var catchUp = CatchUp.once
            switch fields["catch_up"] as? String ?? "once" {
            case "skip": catchUp = .skip
            case "once": catchUp = .once
            case "all":
                let limit = (fields["catch_up_limit"] as? Int) ?? 100
                if limit < 1 || limit > 100_000 { problem("catch_up_limit", "must be from 1 to 100000") }
                catchUp = .all(limit: limit)
            default: problem("catch_up", "'\(fields["catch_up"]!)' is not skip, once or all")
            }
            var skipIfRunning = true
            switch fields["overlap"] as? String ?? "skip" {
            case "skip": skipIfRunning = true
            case "allow": skipIfRunning = false
            default: problem("overlap", "'\(fields["overlap"]!)' is not skip or allow")
            }
            var alertAfter: TimeInterval?
            if let raw = fields["alert_after"] {
                if let seconds = Self.duration("\(raw)") { alertAfter = seconds } else {
                    problem("alert_after", "'\(raw)' is not a duration (e.g. 90m, 26h, 8d)")
                }
            }
            if !bad, let cron {
                let entry = ScheduleEntry(name: name, cron: cron, zone: zone, kind: kind, payload: payload, queue: queue,
                                          priority: priority, catchUp: catchUp, skipIfRunning: skipIfRunning, alertAfter: alertAfter)
                if let registry {
                    do {
                        guard let defaults = registry.defaults(for: kind) else {
                            throw JobError.permanent("unknown job kind '\(kind)'; known kinds: \(registry.kinds.joined(separator: ", "))")
                        }
                        try registry.check(JobEnvelope(kind: kind, version: defaults.version, payload: payload, queue: queue))
                        entries.append(entry)
                    } catch {
                        problems.append("\(label).payload: \(error)")
                    }
                } else {
                    entries.append(entry)
                }
            }
        }
        if !problems.isEmpty { throw ScheduleError(file: file, problems: problems) }
        return Schedule(entries: entries)
    }

    static func json(_ value: Any) -> JSONValue? {
        switch value {
        case let v as Bool: return .bool(v)
        case let v as Int: return .number(Double(v))
        case let v as Double: return .number(v)
        case let v as String: return .string(v)
        case let v as [Any]:
            var out: [JSONValue] = []
            for item in v { guard let j = json(item) else { return nil }; out.append(j) }
            return .array(out)
        case let v as [String: Any]:
            var out: [String: JSONValue] = [:]
            for (k, item) in v { guard let j = json(item) else { return nil }; out[k] = j }
            return .object(out)
        case is NSNull: return .null
        default: return nil
        }
    }

    /// `90s`, `90m`, `26h`, `8d`.
    static func duration(_ text: String) -> TimeInterval? {
        let units: [(String, Double)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast()), n > 0 { return n * scale }
        }
        return nil
    }
}

/// Everything wrong with a schedule file, each problem with its place.
public struct ScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var problems: [String]
    public var description: String {
        "schedule \(file) has \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
