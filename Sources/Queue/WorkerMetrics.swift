import CoreMetrics

/// What a worker reports through swift-metrics (a Prometheus backend in the binary when
/// `--metrics` is given; nothing otherwise). Names and units by Prometheus conventions.
public enum WorkerMetrics {
    /// Counters that only move on rare events start at 0, so alerts and dashboards see a
    /// series (not an absent one) from the worker's start.
    public static func prepare(queues: [String]) {
        for queue in queues {
            Counter(label: "dbq_job_retries_total", dimensions: [("queue", queue)]).increment(by: 0)
            for outcome in ["requeued", "dead"] {
                Counter(label: "dbq_lease_rescues_total", dimensions: [("queue", queue), ("outcome", outcome)]).increment(by: 0)
            }
        }
    }

    /// `dbq_jobs_finished_total{queue, kind, outcome}` and `dbq_job_duration_seconds{kind}`;
    /// retries also as `dbq_job_retries_total{queue}`. A kind's own metrics come from its
    /// `Job.recordMetrics(result:)`, which the worker calls beside this.
    public static func finished(queue: String, kind: String, outcome: Outcome?, seconds: Double) {
        let name: String
        switch outcome {
        case .succeeded?: name = "succeeded"
        case .retry?: name = "retried"
        case .dead?: name = "dead"
        case .cancelled?: name = "cancelled"
        case .released?: name = "released"
        case nil: name = "lease_lost"
        }
        Counter(label: "dbq_jobs_finished_total", dimensions: [("queue", queue), ("kind", kind), ("outcome", name)]).increment()
        CoreMetrics.Timer(label: "dbq_job_duration_seconds", dimensions: [("kind", kind)]).recordNanoseconds(Int64(seconds * 1e9))
        if case .retry? = outcome { Counter(label: "dbq_job_retries_total", dimensions: [("queue", queue)]).increment() }
    }

    /// `dbq_lease_rescues_total{queue, outcome}`: jobs whose lease lapsed, requeued or dead.
    public static func rescued(queue: String, requeued: Int, dead: Int) {
        if requeued > 0 { Counter(label: "dbq_lease_rescues_total", dimensions: [("queue", queue), ("outcome", "requeued")]).increment(by: requeued) }
        if dead > 0 { Counter(label: "dbq_lease_rescues_total", dimensions: [("queue", queue), ("outcome", "dead")]).increment(by: dead) }
    }

    /// `dbq_worker_slots{state}`: busy and idle job slots of this worker.
    public static func slots(busy: Int, capacity: Int) {
        Gauge(label: "dbq_worker_slots", dimensions: [("state", "busy")]).record(Double(busy))
        Gauge(label: "dbq_worker_slots", dimensions: [("state", "idle")]).record(Double(max(0, capacity - busy)))
    }
}
