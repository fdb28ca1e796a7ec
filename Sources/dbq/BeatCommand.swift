import ArgumentParser
import Beat
import Foundation
import Queue

struct BeatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "beat",
        abstract: "Recurring jobs from cron schedules.",
        discussion: "Only 'beat next' exists yet; the beat service and 'beat status' are the next step (see CHANGELOG.md).",
        subcommands: [Next.self])

    struct Next: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "next",
            abstract: "Preview fire times of a schedule entry or of a cron expression, in its zone and in UTC.",
            discussion: """
                Daylight saving time: a slot in a skipped hour fires once at the first instant \
                after the gap; a slot in a repeated hour fires once, at its first occurrence.
                """)

        @Argument(help: "An entry of the schedule file.") var entry: String?
        @Option(help: "A cron expression instead of an entry (5 fields, 6 with seconds, or @daily…).") var cron: String?
        @Option(help: "IANA time zone for --cron.") var tz = "UTC"
        @Option(help: "The schedule file.") var schedule = environment("DBQ_SCHEDULE") ?? "jobs/schedule.yaml"
        @Option(help: "Start after this time (ISO 8601; default now).") var from: String?
        @Option(help: "How many fire times.") var count = 5

        func validate() throws {
            if (entry == nil) == (cron == nil) { throw ValidationError("give an entry name or --cron EXPR") }
            if count < 1 || count > 10_000 { throw ValidationError("--count must be from 1 to 10000") }
        }

        func run() async throws {
            try await reportingFailures {
                let expression: CronExpression
                let zone: TimeZone
                if let cron {
                    expression = try CronExpression(cron)
                    guard let z = TimeZone(identifier: tz) else {
                        throw ValidationError("--tz '\(tz)' is not an IANA time zone name (e.g. Europe/Berlin)")
                    }
                    zone = z
                } else {
                    let loaded = try Schedule.load(path: schedule, registry: Kinds.registry)
                    guard let found = loaded.entries.first(where: { $0.name == entry }) else {
                        throw ValidationError("no entry '\(entry!)' in \(schedule); entries: \(loaded.entries.map(\.name).joined(separator: ", "))")
                    }
                    expression = found.cron
                    zone = found.zone
                }
                let start = try from.map { try parseTime($0, option: "--from") } ?? Date()
                let local = ISO8601DateFormatter()
                local.timeZone = zone
                local.formatOptions = [.withInternetDateTime]
                let times = expression.upcoming(after: start, in: zone, count: count)
                if times.isEmpty { throw CheckFailure("\(expression) does not fire within 30 years of \(isoString(start))") }
                for time in times {
                    print("\(local.string(from: time))  \(isoString(time))")
                }
            }
        }
    }
}
