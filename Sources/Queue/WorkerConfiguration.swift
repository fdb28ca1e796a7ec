/// How a worker takes and runs jobs.
public struct WorkerConfiguration: Sendable {
    /// Queues with weights: a queue of weight 3 is asked first three times as often as
    /// one of weight 1.
    public var queues: [(name: String, weight: Int)]
    /// Jobs in flight at once.
    public var concurrency: Int
    /// How long a lease lasts without a heartbeat; heartbeats come every third of it.
    public var lease: Duration
    /// Longest wait on Redis for work before looking again.
    public var idleWait: Duration
    /// On SIGTERM/SIGINT: how long running jobs may take to finish before they are
    /// cancelled and handed back.
    public var shutdownGrace: Duration
    /// How often this worker looks for lapsed leases to rescue.
    public var rescueInterval: Duration
    public var retryPolicy: RetryPolicy
    /// A name for this worker in job records and `dbq queues`.
    public var workerID: String
    /// Leave when every queue is empty and nothing is in flight (benchmarks, `dbq run`).
    public var exitWhenIdle: Bool
    /// Told of every job this worker finishes (succeeded or dead), after its outcome is
    /// known: for alerts. It must return at once (work of its own goes in a task).
    public var onFinished: (@Sendable (FinishedJob) -> Void)?

    public init(
        queues: [(name: String, weight: Int)] = [("default", 1)], concurrency: Int = 8, lease: Duration = .seconds(30),
        idleWait: Duration = .seconds(30), shutdownGrace: Duration = .seconds(25), rescueInterval: Duration = .seconds(10),
        retryPolicy: RetryPolicy = RetryPolicy(), workerID: String, exitWhenIdle: Bool = false
    ) {
        self.queues = queues
        self.concurrency = concurrency
        self.lease = lease
        self.idleWait = idleWait
        self.shutdownGrace = shutdownGrace
        self.rescueInterval = rescueInterval
        self.retryPolicy = retryPolicy
        self.workerID = workerID
        self.exitWhenIdle = exitWhenIdle
    }

    /// Parses `a:3,b:1` (a weight defaults to 1). Each problem is named.
    public static func parseQueues(_ text: String) throws(JobError) -> [(name: String, weight: Int)] {
        var result: [(String, Int)] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            let name = String(parts[0]).trimmingCharacters(in: .whitespaces)
            guard QueueName.isValid(name) else { throw JobError.permanent("queue '\(name)' in '\(text)' is not a valid queue name") }
            var weight = 1
            if parts.count == 2 {
                guard let w = Int(parts[1]), (1...1000).contains(w) else {
                    throw JobError.permanent("weight '\(parts[1])' of queue '\(name)' is not a number from 1 to 1000")
                }
                weight = w
            } else if parts.count > 2 {
                throw JobError.permanent("'\(item)' is not QUEUE or QUEUE:WEIGHT")
            }
            if result.contains(where: { $0.0 == name }) { throw JobError.permanent("queue '\(name)' is listed twice") }
            result.append((name, weight))
        }
        return result
    }

    /// The queues in the order to ask them this time: a weighted random permutation.
    public func fetchOrder(using generator: inout some RandomNumberGenerator) -> [String] {
        var remaining = queues
        var order: [String] = []
        while !remaining.isEmpty {
            let total = remaining.reduce(0) { $0 + $1.weight }
            var pick = Int.random(in: 0..<total, using: &generator)
            let index = remaining.firstIndex { entry in
                if pick < entry.weight { return true }
                pick -= entry.weight
                return false
            }!
            order.append(remaining.remove(at: index).name)
        }
        return order
    }
}

import Foundation
