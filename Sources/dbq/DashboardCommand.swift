import ArgumentParser
import Backups
import Beat
import Dashboard
import DatabaseJobs
import DBQCommand
import DBQConfig
import Exports
import Foundation
import Logging
import Metrics
import ObjectStorage
import Queue
import RedisQueue
import ServiceLifecycle
import Snapshots
import Synchronization

struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the web dashboard: queues, jobs, dead and scheduled jobs, schedules, workers, backups, exports, snapshots.",
        discussion: """
            Everything is read from Redis (and the storages' manifests) on each request, so \
            the dashboard keeps no state: restart it, run several. Pages update themselves \
            every 3 s. Reading needs no sign-in; retry, cancel, purge and retry-all need the \
            operator token in DBQ_DASHBOARD_TOKEN (sign in with a name and the token, or send \
            'Authorization: Bearer TOKEN'), and each is logged with who did it (also on the \
            'audit' page). Without DBQ_DASHBOARD_TOKEN the dashboard is read-only. It binds \
            to loopback by default: put it behind a TLS proxy to serve it further.
            """)

    @OptionGroup var redis: RedisOptions
    @OptionGroup var config: ConfigOptions

    @Option(name: .customLong("listen"), help: "Address to serve on, HOST:PORT (default: $DBQ_DASHBOARD_LISTEN, else 127.0.0.1:8080).")
    var listenOption: String?
    var listen: String { listenOption ?? environment("DBQ_DASHBOARD_LISTEN") ?? "127.0.0.1:8080" }

    @Option(name: .customLong("public-origin"), help: "The origin browsers reach the dashboard at behind a proxy, e.g. https://dbq.example.com (default: $DBQ_DASHBOARD_ORIGIN): forms' Origin is checked against it instead of the Host header, and over https the session cookie is Secure.")
    var publicOriginOption: String?

    @Option(name: .customLong("schedule"), help: "The schedule file for the schedules page (default: $DBQ_SCHEDULE, else schedule: of dbq.yaml, else jobs/schedule.yaml if present).")
    var scheduleOption: String?

    func run() async throws {
        try await reportingFailures {
            let loaded = try config.load()
            let logger = makeLogger("dbq.dashboard")
            let (host, port) = try MetricsServer.address(listen, option: "--listen")
            let queue = RedisQueue(configuration: try redis.configuration(fallback: loaded), logger: logger, connections: 4)
            _ = try await queue.ping()
            let schedulePath = scheduleOption ?? environment("DBQ_SCHEDULE") ?? (loaded.file != nil ? loaded.schedule : nil)
                ?? (FileManager.default.fileExists(atPath: "jobs/schedule.yaml") ? "jobs/schedule.yaml" : nil)
            let schedule = try schedulePath.map { try Schedule.load(path: $0, registry: Kinds.registry) }
            let artefacts = ArtefactRows(configuration: loaded, logger: logger)
            let data = RedisDashboardData(queue: queue, schedules: {
                guard let schedule else { return nil }
                return try await ScheduleStatus.load(schedule, queue: queue)
            }, artefacts: { try await artefacts.rows() })
            let publicOrigin = publicOriginOption ?? environment("DBQ_DASHBOARD_ORIGIN")
            if let publicOrigin, DashboardAuth.normalizedOrigin(publicOrigin) == nil {
                throw ValidationError("--public-origin '\(publicOrigin)' is not an origin: give scheme and host (and port), like https://dbq.example.com, without a path")
            }
            let auth = DashboardAuth(token: environment("DBQ_DASHBOARD_TOKEN"), publicOrigin: publicOrigin)
            logger.notice("dashboard serving", metadata: ["http.listen": "\(host):\(port)", "dashboard.actions": "\(auth.actionsEnabled ? "enabled (token set)" : "disabled (read-only)")",
                                                         "dashboard.origin": "\(auth.publicOrigin ?? "the request's Host")"])
            let app = DashboardServer.application(data: data, auth: auth, host: host, port: port, logger: logger)
            let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}

/// Backups, exports and snapshots of every configured storage, read from their manifests
/// at most every 30 s (a listing of S3 per page view would be slow and costly).
final class ArtefactRows: Sendable {
    let configuration: DBQConfiguration
    let logger: Logger
    private let cache = Mutex<(ContinuousClock.Instant, [ArtefactRow])?>(nil)

    init(configuration: DBQConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func rows() async throws -> [ArtefactRow] {
        if let (at, rows) = cache.withLock({ $0 }), ContinuousClock.now - at < .seconds(30) { return rows }
        let environment = JobEnvironment(configuration: configuration, locks: MemoryLocks(), logger: logger)
        var out: [ArtefactRow] = []
        let names = configuration.storages.isEmpty ? [nil] : configuration.storages.keys.sorted().map { Optional($0) }
        for name in names {
            let (storage, store) = try environment.store(name)
            for entry in try await BackupCatalog.load(store, database: nil).entries {
                let m = entry.manifest
                let verification: String? = switch entry.verification?.outcome { case .passed?: "passed"; case .failed?: "FAILED"; case nil: nil }
                out.append(ArtefactRow(family: "backup", id: entry.id, database: m.database, storage: storage, finishedAt: m.finishedAt, bytes: m.storedSize,
                                       verification: verification, detail: "\(m.tables.count) tables, \(m.codec.rawValue), PostgreSQL \(m.source.serverVersion)"))
            }
            for entry in try await ExportCatalog.load(store).entries {
                let m = entry.manifest
                let bytes = m.tables.reduce(m.schema.size) { $0 + $1.objects.reduce(0) { $0 + $1.size } }
                out.append(ArtefactRow(family: "export", id: entry.id, database: m.database, storage: storage, finishedAt: m.finishedAt, bytes: bytes,
                                       verification: nil, detail: "\(m.tables.count) tables, \(m.tables.reduce(0) { $0 + $1.rows }) rows" + (m.policyDigest == nil ? ", not masked" : ", masked")))
            }
            for entry in try await SnapshotCatalog.load(store).entries {
                let m = entry.manifest
                let bytes = m.tables.reduce(0) { $0 + $1.objects.reduce(0) { $0 + $1.size } }
                out.append(ArtefactRow(family: "snapshot", id: entry.id, database: m.database, storage: storage, finishedAt: m.finishedAt, bytes: bytes,
                                       verification: nil, detail: "\(m.tables.count) tables" + (m.label.map { ", label \($0)" } ?? "")))
            }
        }
        cache.withLock { $0 = (ContinuousClock.now, out) }
        return out
    }

    /// `dbq_backup_newest_timestamp_seconds{database}` and
    /// `dbq_backup_newest_verified_timestamp_seconds{database}`: when the newest backup, and
    /// the newest backup whose verification passed, finished, from the manifests.
    static func recordNewest(_ rows: [ArtefactRow]) {
        let backups = rows.filter { $0.family == "backup" }
        for (database, mine) in Dictionary(grouping: backups, by: \.database) {
            if let newest = mine.map(\.finishedAt).max() {
                Gauge(label: "dbq_backup_newest_timestamp_seconds", dimensions: [("database", database)]).record(newest.timeIntervalSince1970)
            }
            if let verified = mine.filter({ $0.verification == "passed" }).map(\.finishedAt).max() {
                Gauge(label: "dbq_backup_newest_verified_timestamp_seconds", dimensions: [("database", database)]).record(verified.timeIntervalSince1970)
            }
        }
    }
}
