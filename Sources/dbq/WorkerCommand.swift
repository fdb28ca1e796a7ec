import Alerts
import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import DBQSupport
import Foundation
import Logging
import Queue
import RedisQueue
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Take jobs from Redis queues and run them until SIGTERM or SIGINT.",
        discussion: """
            On SIGTERM or SIGINT the worker stops taking jobs, lets running ones finish \
            within --shutdown-grace, cancels and hands back the rest (they run again at \
            once elsewhere), and exits 0. If it is killed instead, its leases lapse after \
            --lease and any worker requeues the jobs. Refuses a Redis whose \
            maxmemory-policy could evict keys.
            """)

    @OptionGroup var redis: RedisOptions
    @OptionGroup var config: ConfigOptions

    @Option(help: "Queues with weights, e.g. critical:3,default:1 (default: worker.queues of dbq.yaml, $DBQ_WORKER_QUEUES, else default).")
    var queues: String?

    @Option(help: "Jobs in flight at once (default: worker.concurrency of dbq.yaml, $DBQ_WORKER_CONCURRENCY, else 8).")
    var concurrency: Int?

    @Option(help: "Lease time (renewed by heartbeat every third of it).")
    var lease = "30s"

    @Option(help: "How long running jobs may finish after SIGTERM before they are handed back.")
    var shutdownGrace = "25s"

    @Option(help: "How long an idle worker blocks on Redis before looking again (a push, a retry or a rescue wakes it at once; a delayed job's due time shortens the wait).")
    var idleWait = "30s"

    @Option(help: "How often the fleet looks for jobs whose lease lapsed (a killed worker's jobs): one worker per interval does it.")
    var rescueInterval = "10s"

    @Option(help: "A name for this worker (default: host:pid).")
    var id: String?

    @Flag(help: "Exit when every queue is empty and nothing runs (benchmarks, batch runs).")
    var exitWhenIdle = false

    @Option(name: .customLong("metrics"), help: "Serve Prometheus metrics on /metrics and readiness on /healthz at HOST:PORT (e.g. 127.0.0.1:9464; default: $DBQ_METRICS).")
    var metricsOption: String?
    var metrics: String? { metricsOption ?? environment("DBQ_METRICS") }

    func run() async throws {
        try await reportingFailures {
            let loaded = try config.load()
            let concurrency = self.concurrency ?? loaded.workerConcurrency
            guard (1...10_000).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 10000") }
            let parsedQueues = try WorkerConfiguration.parseQueues(queues ?? loaded.workerQueues)
            let logger = makeWorkerLogger()
            let rescueEvery = try parseDuration(rescueInterval, option: "--rescue-interval")
            let driver = RedisQueue(configuration: try redis.configuration(fallback: loaded), logger: logger, connections: 3, rescueEvery: rescueEvery)
            try await driver.checkServer()
            var configuration = WorkerConfiguration(
                queues: parsedQueues, concurrency: concurrency, lease: try parseDuration(lease, option: "--lease"),
                idleWait: try parseDuration(idleWait, option: "--idle-wait"),
                shutdownGrace: try parseDuration(shutdownGrace, option: "--shutdown-grace"),
                rescueInterval: rescueEvery,
                workerID: id ?? "\(ProcessInfo.processInfo.hostName):\(getpid())", exitWhenIdle: exitWhenIdle)
            guard configuration.lease >= .seconds(1) else { throw ValidationError("--lease must be at least 1s") }
            // Dead jobs and health findings raise alerts (alerts: in dbq.yaml), sent in tasks
            // of their own: a job's end never waits on a receiver.
            if !loaded.alerts.isEmpty {
                let alerting = Alerting(receivers: loaded.alerts, queue: driver, logger: logger)
                configuration.onFinished = { alerting.submit($0) }
            }
            if let metrics { _ = try MetricsServer.address(metrics); _ = MetricsServer.bootstrapped }
            let environment = JobEnvironment(configuration: loaded, locks: driver, logger: logger)
            let worker = Worker(driver: driver, registry: Kinds.registry { environment }, configuration: configuration, logger: logger)
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)]
            if let metrics {
                let names = parsedQueues.map(\.name)
                services.append(.init(service: try MetricsServer.service(listen: metrics, queue: driver, logger: logger) {
                    await MetricsServer.refreshQueues(driver, names: names)
                }))
            }
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    /// Workers log at info by default: a worker's log is its record.
    private func makeWorkerLogger() -> Logger {
        if environment("DBQ_LOG_LEVEL") == nil { setenv("DBQ_LOG_LEVEL", "info", 1) }
        return makeLogger("dbq.worker")
    }
}
