import ArgumentParser
import DBQCommand
import Foundation
import Queue
import RedisQueue

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List, show, retry and cancel jobs.",
        subcommands: [List.self, Show.self, Retry.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List jobs (default: pending, scheduled and running, in every queue).")

        @OptionGroup var redis: RedisOptions
        @Option(help: "Only this state: scheduled, pending, running, succeeded, dead, cancelled.")
        var state: String?
        @Option(help: "Only this queue.")
        var queue: String?
        @Option(help: "At most this many per queue and state.")
        var limit = 50
        @Flag(help: "Print JSON: an array of job records.")
        var json = false

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.jobs"), connections: 1)
                let states: [JobState]
                if let state {
                    guard let parsed = JobState(rawValue: state) else {
                        throw ValidationError("--state '\(state)' is not one of: \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    states = [parsed]
                } else {
                    states = [.running, .pending, .scheduled]
                }
                var queues = [String]()
                if let queue { queues = [queue] } else { queues = try await driver.queueNames() }
                var records: [JobRecord] = []
                for q in queues {
                    for s in states { records += try await driver.list(queue: q, state: s, limit: limit) }
                }
                if json { try printJSON(records); return }
                printTable(records)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one job.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The job id.") var id: String
        @Option(help: "The job's queue (default: look in every queue).") var queue: String?
        @Flag(help: "Print the job record as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.jobs"), connections: 1)
                guard let record = try await driver.job(id, queue: queue) else {
                    throw CheckFailure("no job \(id)\(queue.map { " in queue '\($0)'" } ?? " in any queue") (finished jobs expire after a while)")
                }
                if json { try printJSON(record); return }
                let rows: [(String, String)] = [
                    ("id", record.id), ("kind", record.kind ?? "?"), ("queue", record.queue), ("state", record.state),
                    ("attempt", "\(record.attempt) of \(record.maxAttempts.map(String.init) ?? "?")"),
                    ("priority", record.priority.map(String.init) ?? "-"), ("enqueued", "\(isoString(record.enqueuedAt)) by \(record.enqueuedBy ?? "?")"),
                    ("run at", isoString(record.runAt)), ("started", isoString(record.startedAt)), ("finished", isoString(record.finishedAt)),
                    ("worker", record.worker ?? "-"), ("lease until", isoString(record.leaseUntil)),
                    ("unique key", record.uniqueKey ?? "-"), ("payload", record.payload?.jsonText ?? "-"),
                    ("progress", record.progress.map { p in [p.fraction.map { String(format: "%.0f%%", $0 * 100) }, p.message, p.bytes.map { "\($0) bytes" }, p.rows.map { "\($0) rows" }].compactMap { $0 }.joined(separator: ", ") } ?? "-"),
                    ("result", record.result?.jsonText ?? "-"), ("error", record.error ?? "-"),
                ]
                for (name, value) in rows { print(name.padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
                if record.cancelRequested { print("cancel      requested; the worker stops it at its next heartbeat") }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "retry", abstract: "Run a dead, cancelled or succeeded job again.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The job id.") var id: String

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.jobs"), connections: 1)
                guard let state = try await driver.retry(id), !state.isEmpty else { throw CheckFailure("no job \(id)") }
                guard state == "pending" else { throw CheckFailure("job \(id) is \(state); only dead, cancelled or succeeded jobs can be retried") }
                print("\(id) pending")
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a job (a running one stops at its next heartbeat).")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The job id.") var id: String

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.jobs"), connections: 1)
                guard let state = try await driver.cancel(id), !state.isEmpty else { throw CheckFailure("no job \(id)") }
                switch state {
                case "cancelled": print("\(id) cancelled")
                case "running": print("\(id) running; cancel requested, it stops at its next heartbeat")
                default: throw CheckFailure("job \(id) already ended: \(state)")
                }
            }
        }
    }
}

func printTable(_ records: [JobRecord]) {
    print("ID                                    QUEUE        KIND         STATE      ATT  WHEN        ERROR")
    for r in records {
        let when: String = switch r.state {
        case "scheduled": relative(r.runAt)
        case "running": relative(r.startedAt)
        case "pending": relative(r.enqueuedAt)
        default: relative(r.finishedAt)
        }
        let error = (r.error ?? "").replacingOccurrences(of: "\n", with: " ")
        func cell(_ text: String, _ width: Int) -> String { String(text.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0) }
        let cells: [String] = [cell(r.id, 37), cell(r.queue, 12), cell(r.kind ?? "?", 12), cell(r.state, 10),
                               cell(String(r.attempt), 4), cell(when, 11), String(error.prefix(60))]
        print(cells.joined(separator: " "))
    }
    stderrLine("\(records.count) jobs")
}
