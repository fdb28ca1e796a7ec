import ArgumentParser
import DBQCommand
import Foundation
import Queue
import RedisQueue

struct DeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead", abstract: "Jobs that ran out of attempts or failed for good.",
        subcommands: [List.self, Retry.self, Purge.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List dead jobs, newest first, with their errors.")
        @OptionGroup var redis: RedisOptions
        @Option(help: "Only this queue.") var queue: String?
        @Option(help: "At most this many per queue.") var limit = 50
        @Flag(help: "Print JSON: an array of job records.") var json = false

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.dead"), connections: 1)
                var queues = [String]()
                if let queue { queues = [queue] } else { queues = try await driver.queueNames() }
                var records: [JobRecord] = []
                for q in queues { records += try await driver.list(queue: q, state: .dead, limit: limit) }
                if json { try printJSON(records) } else { printTable(records) }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "retry", abstract: "Run dead jobs again: one by id, or --all of a queue.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The job id.") var id: String?
        @Flag(help: "Every dead job of --queue.") var all = false
        @Option(help: "The queue, with --all.") var queue = "default"

        func validate() throws {
            if (id == nil) == !all { throw ValidationError("give a job id or --all") }
        }

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.dead"), connections: 1)
                var ids = [String]()
                if let id { ids = [id] } else { ids = try await driver.list(queue: queue, state: .dead, limit: 100_000).map(\.id) }
                var retried = 0
                for id in ids where try await driver.retry(id, queue: all ? queue : nil) == "pending" { retried += 1 }
                print("\(retried) jobs pending again")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "purge", abstract: "Delete dead jobs of a queue for good.")
        @OptionGroup var redis: RedisOptions
        @Option(help: "The queue.") var queue = "default"
        @Option(help: "Only those dead for longer than this (e.g. 7d).") var olderThan: String?

        func run() async throws {
            try await reportingFailures {
                let driver = try redis.queue(logger: makeLogger("dbq.dead"), connections: 1)
                let age = try olderThan.map { try parseDuration($0, option: "--older-than") } ?? .zero
                let n = try await driver.purge(queue: queue, state: .dead, olderThan: age)
                print("purged \(n) dead jobs from '\(queue)'")
            }
        }
    }
}
