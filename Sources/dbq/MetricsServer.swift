import DBQCommand
import Foundation
import Synchronization
import Hummingbird
import Logging
import Metrics
import Prometheus
import Queue
import RedisQueue
import ServiceLifecycle

/// `--metrics HOST:PORT`: swift-metrics bootstrapped with the Prometheus exporter, and an
/// HTTP server for `/metrics` and `/healthz` (ready only when Redis answers). Gauges read
/// from Redis (queue depth, schedule entries) are refreshed at most once per
/// `refreshInterval`, however often the endpoint is scraped.
enum MetricsServer {
    static let registry = PrometheusCollectorRegistry()
    static let bootstrapped: Void = {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1),
                                                   .seconds(5), .seconds(30), .seconds(60), .seconds(300), .seconds(1800), .seconds(3600), .seconds(6 * 3600)]
        MetricsSystem.bootstrap(factory)
    }()

    static func address(_ text: String, option: String = "--metrics") throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port), colon != text.startIndex else {
            throw CheckFailure("\(option) '\(text)' must be HOST:PORT, e.g. 127.0.0.1:\(option == "--metrics" ? 9464 : 8080)")
        }
        return (String(text[..<colon]), port)
    }

    /// The HTTP service; `refresh` updates the Redis-read gauges before a scrape.
    static func service(listen: String, queue: RedisQueue, logger: Logger, refresh: @escaping @Sendable () async -> Void) throws -> some Service {
        _ = bootstrapped
        let (host, port) = try address(listen)
        let throttle = RefreshThrottle(interval: .seconds(5))
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            if throttle.due() { await refresh() }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        // Alive while it serves (liveness); /healthz is ready only when Redis answers.
        router.get("/livez") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/healthz") { _, _ -> Response in
            let ok = (try? await queue.ping()) ?? false
            return Response(status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: ok ? "ok\n" : "redis does not answer\n")))
        }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "dbq"), logger: quiet)
    }

    /// Queue depth by state and the oldest pending job's age, for each queue.
    static func refreshQueues(_ queue: RedisQueue, names: [String]) async {
        guard let alive = try? await queue.workers() else { return }
        for name in names {
            guard let stats = try? await queue.stats(queue: name, workers: alive) else { continue }
            for (state, count) in [("pending", stats.pending), ("scheduled", stats.scheduled), ("running", stats.running),
                                   ("succeeded", stats.succeeded), ("dead", stats.dead), ("cancelled", stats.cancelled)] {
                Gauge(label: "dbq_queue_jobs", dimensions: [("queue", name), ("state", state)]).record(Double(count))
            }
            Gauge(label: "dbq_queue_oldest_pending_age_seconds", dimensions: [("queue", name)]).record(stats.oldestPendingSeconds ?? 0)
            Gauge(label: "dbq_queue_workers", dimensions: [("queue", name)]).record(Double(stats.workers))
        }
    }
}

/// True at most once per interval.
final class RefreshThrottle: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    let interval: Duration
    init(interval: Duration) { self.interval = interval }
    func due() -> Bool {
        last.withLock { last in
            let now = ContinuousClock.now
            if let l = last, now - l < interval { return false }
            last = now
            return true
        }
    }
}
