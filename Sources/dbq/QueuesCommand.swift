import ArgumentParser
import DBQCommand
import Foundation
import Queue
import RedisQueue

struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues", abstract: "Per queue: pending, scheduled, running, dead, workers alive, oldest pending age.")

    @OptionGroup var redis: RedisOptions
    @Flag(help: "Print JSON: {queues: [...], workers: [...]}.") var json = false

    struct Report: Encodable {
        var queues: [QueueStats]
        var workers: [WorkerPresence]
    }

    func run() async throws {
        try await reportingFailures {
            let driver = try redis.queue(logger: makeLogger("dbq.queues"), connections: 1)
            let workers = try await driver.workers()
            var stats: [QueueStats] = []
            for name in try await driver.queueNames() { stats.append(try await driver.stats(queue: name, workers: workers)) }
            if json { try printJSON(Report(queues: stats, workers: workers)); return }
            print("QUEUE            PENDING  SCHEDULED  RUNNING  SUCCEEDED     DEAD  CANCELLED  WORKERS  OLDEST PENDING")
            for s in stats {
                let oldest = s.oldestPendingSeconds.map { String(format: "%.1fs", $0) } ?? "-"
                let name = String(s.queue.prefix(16)).padding(toLength: 16, withPad: " ", startingAt: 0)
                print(name + String(format: " %7d  %9d  %7d  %9d  %7d  %9d  %7d  ", s.pending, s.scheduled, s.running,
                                    s.succeeded, s.dead, s.cancelled, s.workers) + oldest)
            }
            stderrLine("\(workers.count) workers alive")
        }
    }
}
