import ArgumentParser
import Foundation

/// Parses `500ms`, `30s`, `10m`, `2h`, `1d` (or a bare number of seconds).
public func parseDuration(_ text: String, option: String) throws -> Duration {
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
public func parseTime(_ text: String, option: String) throws -> Date {
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

public func isoString(_ date: Date?) -> String {
    guard let date else { return "-" }
    let f = ISO8601DateFormatter()
    return f.string(from: date)
}

/// `3s ago`, `in 2m`: for listings.
public func relative(_ date: Date?, now: Date = Date()) -> String {
    guard let date else { return "-" }
    let seconds = date.timeIntervalSince(now)
    let magnitude = abs(seconds)
    let text = magnitude < 1 ? "now" : magnitude < 120 ? "\(Int(magnitude))s" : magnitude < 7200 ? "\(Int(magnitude / 60))m"
        : magnitude < 172_800 ? "\(Int(magnitude / 3600))h" : "\(Int(magnitude / 86_400))d"
    if text == "now" { return text }
    return seconds < 0 ? "\(text) ago" : "in \(text)"
}

/// Prints a value as pretty JSON on stdout (the `--json` shape of listings).
public func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

public func stderrLine(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// `12.3 MB` (decimal, as throughput figures are given).
public func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

/// `12.3 MiB`, or `?` when unknown.
public func mebibytes(_ bytes: Int?) -> String { bytes.map { formatBytes(Int64($0)) } ?? "?" }

/// `text` padded with spaces to `width` on the right (`pad`) or on the left (`lpad`), for columns.
public func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
public func lpad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
