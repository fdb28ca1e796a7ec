import ArgumentParser
import Backups
import DatabaseJobs
import Exports
import Snapshots
import Migrations
import Indexes
import Operations
import DBQConfig
import DBQSupport
import Foundation
import Logging
import Queue
import RedisClient
import RedisQueue

/// `--redis-url` for every command that talks to the queue.
struct RedisOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL, redis://[user:password@]host:port[/db] (default: $DBQ_REDIS_URL, else redis: of dbq.yaml).")
    var url: String?

    /// `--redis-url`, else `$DBQ_REDIS_URL`, else `redis:` of dbq.yaml (`$DBQ_CONFIG` or ./dbq.yaml).
    func configuration(fallback: DBQConfiguration? = nil) throws -> RedisConfiguration {
        if let url = url ?? environment("DBQ_REDIS_URL") { return try RedisConfiguration(url: url) }
        if let redis = try (fallback ?? DBQConfiguration.load(path: nil)).redis { return redis }
        throw ValidationError("no Redis URL: pass --redis-url, set DBQ_REDIS_URL, or put redis: in dbq.yaml ($DBQ_CONFIG)")
    }

    func queue(logger: Logger, connections: Int = 3) throws -> RedisQueue {
        RedisQueue(configuration: try configuration(), logger: logger, connections: connections)
    }
}

/// `--database-url` for commands that talk to PostgreSQL directly.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $DBQ_DATABASE_URL).")
    var url: String?

    func resolved() throws -> String {
        guard let url = url ?? environment("DBQ_DATABASE_URL") else {
            throw ValidationError("no PostgreSQL URL: pass --database-url or set DBQ_DATABASE_URL")
        }
        return url
    }
}

/// The job kinds this binary runs and can push.
enum Kinds {
    /// For pushing and checking payloads: the backup kinds decode but cannot run.
    static var registry: JobRegistry {
        registry { throw CheckFailure("backup jobs need a worker's environment") }
    }

    /// Every kind, the backup kinds running in `environment`.
    static func registry(_ environment: @escaping @Sendable () throws -> JobEnvironment) -> JobRegistry {
        var registry = JobRegistry.builtins
        registry.registerBackupJobs(environment: environment)
        registry.registerExportJobs(environment: environment)
        registry.registerSnapshotJobs(environment: environment)
        registry.registerMigrationJobs(environment: environment)
        registry.registerIndexJobs(environment: environment)
        registry.registerOperationsJobs(environment: environment)
        return registry
    }
}

/// Parses `500ms`, `30s`, `10m`, `2h`, `1d` (or a bare number of seconds).
func parseDuration(_ text: String, option: String) throws -> Duration {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
        let number = trimmed.dropLast(suffix.count)
        if let value = Double(number), value >= 0, value.isFinite, !(suffix == "m" && number.hasSuffix("m")) {
            return .milliseconds(Int64(value * scale * 1000))
        }
    }
    if let value = Double(trimmed), value >= 0, value.isFinite { return .milliseconds(Int64(value * 1000)) }
    throw ValidationError("\(option) '\(text)' is not a duration: use e.g. 500ms, 30s, 10m, 2h or 1d")
}

/// Parses an ISO 8601 time (`2026-11-22T03:00:00Z`, with an offset, or a date alone in UTC).
func parseTime(_ text: String, option: String) throws -> Date {
    let full = ISO8601DateFormatter()
    if let date = full.date(from: text) { return date }
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = fractional.date(from: text) { return date }
    let day = ISO8601DateFormatter()
    day.formatOptions = [.withFullDate]
    if let date = day.date(from: text) { return date }
    throw ValidationError("\(option) '\(text)' is not an ISO 8601 time: use e.g. 2026-11-22T03:00:00Z or 2026-11-22T04:00:00+01:00")
}

func isoString(_ date: Date?) -> String {
    guard let date else { return "-" }
    let f = ISO8601DateFormatter()
    return f.string(from: date)
}

/// `3s ago`, `in 2m`: for listings.
func relative(_ date: Date?, now: Date = Date()) -> String {
    guard let date else { return "-" }
    let seconds = date.timeIntervalSince(now)
    let magnitude = abs(seconds)
    let text = magnitude < 1 ? "now" : magnitude < 120 ? "\(Int(magnitude))s" : magnitude < 7200 ? "\(Int(magnitude / 60))m"
        : magnitude < 172_800 ? "\(Int(magnitude / 3600))h" : "\(Int(magnitude / 86_400))d"
    if text == "now" { return text }
    return seconds < 0 ? "\(text) ago" : "in \(text)"
}

/// Prints a value as pretty JSON on stdout (the `--json` shape of listings).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func stderrLine(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

import CDBQSystem

/// Fixed malloc thresholds: glibc's adaptive mmap threshold otherwise rises to the size
/// of freed large buffers (16 MiB upload parts) and keeps them in per-thread arenas,
/// which shows as resident memory that never goes back.
enum MemoryTuning {
    static let applied: Void = {
        CSystem_tune_malloc(128 << 10, 4)
    }()
}
