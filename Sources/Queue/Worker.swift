import DBQSupport
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Takes jobs from a queue driver and runs them: `concurrency` at a time, each under a
/// lease renewed by heartbeat, with retries by the retry policy.
///
/// On graceful shutdown (SIGTERM/SIGINT in a `ServiceGroup`) it stops fetching, lets
/// running jobs finish within `shutdownGrace`, then cancels the rest and hands their
/// leases back so they run again at once. If the process is killed instead, the leases
/// lapse and any worker's rescuer requeues the jobs: nothing is lost either way.
public final class Worker: Service {
    let driver: any JobQueueDriver
    let registry: JobRegistry
    let configuration: WorkerConfiguration
    let logger: Logger
    let state = WorkerState()
    /// Reads an envelope's header and typed payload in one pass.
    let decoder: JSONDecoder
    /// Jobs fetched at once, at most.
    static let batchSize = 256

    public init(driver: any JobQueueDriver, registry: JobRegistry, configuration: WorkerConfiguration, logger: Logger) {
        self.driver = driver
        self.registry = registry
        decoder = registry.envelopeDecoder()
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker.id"] = "\(configuration.workerID)"
        self.logger = logger
    }

    /// Jobs this worker has finished (reported) since it started.
    public var finishedCount: Int { state.finishedCount }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runLoops()
        } onGracefulShutdown: {
            self.state.beginShutdown()
        }
    }

    /// Stops fetching and drains, as on SIGTERM.
    public func shutdown() { state.beginShutdown() }

    private func runLoops() async throws {
        WorkerMetrics.prepare(queues: configuration.queues.map(\.name))
        logger.info("worker started", metadata: [
            "worker.queues": "\(configuration.queues.map { "\($0.name):\($0.weight)" }.joined(separator: ","))",
            "worker.concurrency": "\(configuration.concurrency)",
        ])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.heartbeatLoop() }
            group.addTask { await self.rescueLoop() }
            group.addTask { await self.reporterLoop() }
            group.addTask { await self.presenceLoop() }
            group.addTask { await self.timeoutLoop() }
            await fetchLoop()
            await drain()
            state.finish()
            await state.reporterDone.wait()
            group.cancelAll()
        }
        try? await (driver as? any WorkerRegistry)?.withdraw(configuration.workerID)
        logger.info("worker stopped", metadata: ["worker.finished": "\(state.finishedCount)", "worker.refused": "\(state.refusedCount)"])
    }

    // MARK: - Fetching

    private func fetchLoop() async {
        var generator = SystemRandomNumberGenerator()
        var failures = 0
        let names = configuration.queues.map(\.name)
        while !state.isStopping {
            let capacity = configuration.concurrency - state.inFlightCount
            WorkerMetrics.slots(busy: configuration.concurrency - capacity, capacity: configuration.concurrency)
            if capacity <= 0 {
                await state.capacity.wait()
                continue
            }
            var fetched: [LeasedJob] = []
            var nextScheduled: Duration?
            do {
                for queue in configuration.fetchOrder(using: &generator) {
                    let result = try await driver.fetch(queue: queue, max: min(capacity, Self.batchSize),
                                                        worker: configuration.workerID, lease: configuration.lease)
                    if let next = result.nextScheduledIn { nextScheduled = min(nextScheduled ?? next, next) }
                    if !result.jobs.isEmpty {
                        fetched = result.jobs
                        break
                    }
                }
                failures = 0
            } catch {
                failures += 1
                let delay = Backoff(base: .milliseconds(100), cap: .seconds(5)).delay(attempt: failures - 1)
                logger.warning("cannot fetch jobs; retrying", metadata: ["error": "\(error)", "retry.delay_ms": "\(delay.milliseconds)"])
                try? await Task.sleep(for: delay)
                continue
            }
            if fetched.isEmpty {
                if configuration.exitWhenIdle && state.inFlightCount == 0 && state.unreportedCount == 0 && nextScheduled == nil {
                    state.beginShutdown()
                    break
                }
                var wait = configuration.idleWait
                if let nextScheduled { wait = max(.milliseconds(1), min(wait, nextScheduled)) }
                // A worker that exits when idle looks again soon: its last reports may still be in flight.
                if configuration.exitWhenIdle { wait = min(wait, .milliseconds(200)) }
                await idle(queues: names, for: wait)
                continue
            }
            for job in fetched { start(job) }
        }
    }

    /// Waits for work until `wait` passes, work arrives or the worker is told to stop,
    /// whichever comes first. A driver's wait may not be interruptible (a `BLPOP` on its
    /// own connection): it is left to end on its own, so a stop never waits out an idle
    /// wait of half a minute.
    private func idle(queues: [String], for wait: Duration) async {
        let first = FirstToFinish()
        Task { [driver] in
            do {
                try await driver.waitForWork(queues: queues, timeout: wait)
            } catch {
                try? await Task.sleep(for: .milliseconds(200))
            }
            first.finish()
        }
        let stop = Task { [state] in
            await state.stopped.wait()
            first.finish()
        }
        await first.wait()
        stop.cancel()
    }

    private func start(_ job: LeasedJob) {
        let handle = JobHandle(lease: job.lease)
        state.add(handle)
        WorkerMetrics.slots(busy: state.inFlightCount, capacity: configuration.concurrency)
        let task = Task {
            // The handle stays in flight, and its lease renewed, until the reporter has
            // recorded the outcome: a slow report must not let the lease lapse.
            let started = ContinuousClock.now
            var kind = "unknown"
            let outcome = await self.execute(job, handle: handle, kind: &kind)
            WorkerMetrics.finished(queue: job.lease.queue, kind: kind, outcome: outcome, seconds: (ContinuousClock.now - started).seconds)
            if case .succeeded(let result?)? = outcome { self.registry.recordMetrics(kind: kind, result: result) }
            if let hook = self.configuration.onFinished, let outcome {
                switch outcome {
                case .succeeded, .dead:
                    let envelope = try? JSONDecoder().decode(JSONValue.self, from: Data(job.envelopeJSON.utf8))
                    var payload: JSONValue?
                    if case .object(let fields)? = envelope { payload = fields["payload"] }
                    hook(FinishedJob(id: job.lease.id, queue: job.lease.queue, kind: kind, outcome: outcome, payload: payload))
                default: break
                }
            }
            if let outcome {
                self.state.complete(job.lease, outcome)
            } else {
                self.state.remove(job.lease)
            }
        }
        handle.setTask(task)
    }

    // MARK: - Running one job

    private func execute(_ job: LeasedJob, handle: JobHandle, kind: inout String) async -> Outcome? {
        let decoded: DecodedJob
        do {
            decoded = try registry.decodeEnvelope(job.envelopeJSON, decoder: decoder)
        } catch {
            let reason = "envelope does not decode: \(JobRegistry.describe(error))"
            self.logger.error("job is malformed; moved to dead", metadata: ["error": "\(reason)", "job.id": "\(job.lease.id)", "job.queue": "\(job.lease.queue)"])
            return .dead(error: reason)
        }
        let envelope = decoded.header
        kind = envelope.kind
        let leaseDuration = configuration.lease
        let context = JobContext(
            id: envelope.id, kind: envelope.kind, queue: envelope.queue, attempt: job.attempt, fencingToken: job.lease.token,
            logger: self.logger, metadata: ["job.id": "\(job.lease.id)", "job.queue": "\(job.lease.queue)", "job.kind": "\(envelope.kind)"],
            confirmLease: { [driver] in
                if handle.cancelReason == .leaseLost { throw LeaseLostError(jobID: job.lease.id) }
                let status = try await driver.heartbeat([job.lease], lease: leaseDuration).first
                switch status {
                case .held?: return
                case .cancelRequested?:
                    handle.cancel(.cancelRequested)
                    throw CancellationError()
                case .lost?, nil:
                    handle.cancel(.leaseLost)
                    throw LeaseLostError(jobID: job.lease.id)
                }
            }
        ) { [driver] progress in
            guard handle.shouldSendProgress() else { return }
            try? await driver.progress(job.lease, progress)
        }
        handle.setDeadline(ContinuousClock.now + .milliseconds(Int64(envelope.timeoutSeconds * 1000)))
        do {
            let result = try await registry.run(decoded, context: context)
            switch handle.cancelReason {
            case .leaseLost?:
                context.logger.warning("lease lost; the job's outcome is discarded (another worker owns it now)")
                return nil
            case .timedOut?: throw CancellationError()
            default: return .succeeded(result: result)
            }
        } catch {
            var timedOut = false
            switch handle.cancelReason {
            case .leaseLost?:
                context.logger.warning("lease lost; the job's outcome is discarded (another worker owns it now)")
                return nil
            case .shutdown?:
                return .released
            case .cancelRequested?:
                return .cancelled
            case .timedOut?:
                timedOut = true
            case nil:
                break
            }
            let failure: JobError = timedOut
                ? .retryable("timed out after \(envelope.timeoutSeconds) s")
                : JobError.classify(error)
            var generator = SystemRandomNumberGenerator()
            switch configuration.retryPolicy.decide(attempt: job.attempt, maxAttempts: envelope.maxAttempts, error: failure, using: &generator) {
            case .retry(let delay):
                context.logger.info("job failed; will retry", metadata: ["error": "\(failure)", "job.attempt": "\(job.attempt)", "retry.delay_ms": "\(delay.milliseconds)"])
                return .retry(afterMilliseconds: delay.milliseconds, error: failure.message)
            case .dead(let reason):
                context.logger.error("job failed; moved to dead", metadata: ["error": "\(reason)", "job.attempt": "\(job.attempt)"])
                return .dead(error: reason)
            }
        }
    }

    // MARK: - Leases, completions, rescue

    private func heartbeatLoop() async {
        let interval = configuration.lease / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let handles = state.handles
            guard !handles.isEmpty else { continue }
            do {
                let statuses = try await driver.heartbeat(handles.map(\.lease), lease: configuration.lease)
                for (handle, status) in zip(handles, statuses) {
                    switch status {
                    case .held: break
                    case .lost: handle.cancel(.leaseLost)
                    case .cancelRequested: handle.cancel(.cancelRequested)
                    }
                }
            } catch {
                logger.warning("heartbeat failed; leases may lapse if this goes on", metadata: ["error": "\(error)"])
            }
        }
    }

    private func reporterLoop() async {
        var failures = 0
        while true {
            let batch = state.takeCompletions()
            if batch.isEmpty {
                if state.isFinished { break }
                await state.completionsReady.wait()
                continue
            }
            do {
                let accepted = try await driver.finish(batch)
                for ((lease, _), ok) in zip(batch, accepted) where !ok {
                    logger.warning("completion refused: the lease was lost (stale fencing token)", metadata: ["job.id": "\(lease.id)"])
                }
                state.recordRefused(accepted.filter { !$0 }.count)
                state.recordFinished(batch.map(\.0))
                WorkerMetrics.slots(busy: state.inFlightCount, capacity: configuration.concurrency)
                failures = 0
            } catch {
                failures += 1
                state.requeueCompletions(batch)
                if failures > 50 && state.isFinished {
                    logger.error("cannot report completions; the leases will lapse and the jobs run again", metadata: ["error": "\(error)"])
                    break
                }
                try? await Task.sleep(for: Backoff(base: .milliseconds(100), cap: .seconds(2)).delay(attempt: failures - 1))
            }
        }
        state.reporterDone.signal()
    }

    private func rescueLoop() async {
        while !Task.isCancelled {
            for queue in configuration.queues.map(\.name) {
                do {
                    let (requeued, dead) = try await driver.rescue(queue: queue)
                    WorkerMetrics.rescued(queue: queue, requeued: requeued, dead: dead)
                    if requeued + dead > 0 {
                        logger.warning("rescued jobs whose lease lapsed", metadata: ["job.queue": "\(queue)", "requeued": "\(requeued)", "dead": "\(dead)"])
                    }
                } catch {
                    logger.debug("rescue failed", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: configuration.rescueInterval)
        }
    }

    /// Cancels attempts that run past their timeout. One loop for all jobs: a timer per
    /// job would cost a task and a pending timer for every job, even the fastest.
    private func timeoutLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let now = ContinuousClock.now
            for handle in state.handles { handle.cancelIfPast(now) }
        }
    }

    /// How often a worker tells the registry it is alive; listings count a worker alive
    /// for three times as long.
    public static let presenceInterval: Duration = .seconds(10)

    /// Tells the registry (if the driver keeps one) that this worker is alive.
    private func presenceLoop() async {
        guard let registry = driver as? any WorkerRegistry else { return }
        let started = Date()
        while !Task.isCancelled {
            let presence = WorkerPresence(
                id: configuration.workerID, host: ProcessInfo.processInfo.hostName, pid: getpid(),
                queues: configuration.queues.map(\.name), concurrency: configuration.concurrency,
                running: state.inFlightCount, startedAt: started, seenAt: Date())
            try? await registry.announce(presence)
            try? await Task.sleep(for: Self.presenceInterval)
        }
    }

    /// Waits for running jobs up to the grace period, then cancels and hands back the rest.
    private func drain() async {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while state.inFlightCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = state.handles
        if !left.isEmpty {
            logger.warning("shutdown grace over; handing back running jobs", metadata: ["jobs": "\(left.count)"])
            left.forEach { $0.cancel(.shutdown) }
            // Their hand-backs are reported by the reporter; if Redis is unreachable the
            // leases lapse instead and the rescuer requeues the jobs.
            let reportDeadline = ContinuousClock.now + .seconds(10)
            while state.inFlightCount > 0 && ContinuousClock.now < reportDeadline { try? await Task.sleep(for: .milliseconds(10)) }
        }
    }
}

/// Why a running job was cancelled: each ends differently.
enum CancelReason: Sendable, Equatable {
    case leaseLost, shutdown, cancelRequested, timedOut
}

/// One running job: its lease, its task, and why it was cancelled if it was.
final class JobHandle: Sendable {
    let lease: Lease
    private struct State {
        var task: Task<Void, Never>?
        var reason: CancelReason?
        var lastProgress: ContinuousClock.Instant?
        var deadline: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    init(lease: Lease) { self.lease = lease }

    func setTask(_ task: Task<Void, Never>) {
        let cancelled = state.withLock { s -> Bool in
            s.task = task
            return s.reason != nil
        }
        if cancelled { task.cancel() }
    }

    func cancel(_ reason: CancelReason) {
        let task = state.withLock { s -> Task<Void, Never>? in
            if s.reason == nil { s.reason = reason }
            return s.task
        }
        task?.cancel()
    }

    var cancelReason: CancelReason? { state.withLock { $0.reason } }

    func setDeadline(_ deadline: ContinuousClock.Instant) { state.withLock { $0.deadline = deadline } }

    /// Cancels the job if its attempt has run past its timeout.
    func cancelIfPast(_ now: ContinuousClock.Instant) {
        let late = state.withLock { s in s.reason == nil && (s.deadline.map { now >= $0 } ?? false) }
        if late { cancel(.timedOut) }
    }

    /// JobProgress is stored at most four times a second per job.
    func shouldSendProgress() -> Bool {
        state.withLock { s in
            let now = ContinuousClock.now
            if let last = s.lastProgress, now - last < .milliseconds(250) { return false }
            s.lastProgress = now
            return true
        }
    }
}

/// The worker's shared bookkeeping.
final class WorkerState: Sendable {
    private struct State {
        var stopping = false
        var finished = false
        var inFlight: [Lease: JobHandle] = [:]
        var completions: [(Lease, Outcome)] = []
        /// Completions handed to the reporter and not yet acknowledged by the driver.
        var unreported = 0
        var finishedCount = 0
        /// Outcomes the driver refused (a stale fencing token).
        var refusedCount = 0
    }
    private let state = Mutex(State())
    let capacity = AsyncSignal()
    let completionsReady = AsyncSignal()
    let reporterDone = AsyncSignal()
    /// Signalled on shutdown: wakes the fetch loop from an idle wait.
    let stopped = AsyncSignal()

    var isStopping: Bool { state.withLock { $0.stopping } }
    var isFinished: Bool { state.withLock { $0.finished } }
    var inFlightCount: Int { state.withLock { $0.inFlight.count } }
    var handles: [JobHandle] { state.withLock { Array($0.inFlight.values) } }
    var finishedCount: Int { state.withLock { $0.finishedCount } }
    var refusedCount: Int { state.withLock { $0.refusedCount } }

    func recordRefused(_ n: Int) { if n > 0 { state.withLock { $0.refusedCount += n } } }
    var unreportedCount: Int { state.withLock { $0.unreported } }

    func beginShutdown() {
        state.withLock { $0.stopping = true }
        capacity.signal()
        stopped.signal()
    }

    func finish() {
        state.withLock { $0.finished = true }
        completionsReady.signal()
    }

    func add(_ handle: JobHandle) { state.withLock { $0.inFlight[handle.lease] = handle } }

    func remove(_ lease: Lease) {
        state.withLock { _ = $0.inFlight.removeValue(forKey: lease) }
        capacity.signal()
    }

    func complete(_ lease: Lease, _ outcome: Outcome) {
        state.withLock { s in
            s.completions.append((lease, outcome))
            s.unreported += 1
        }
        completionsReady.signal()
    }

    func takeCompletions() -> [(Lease, Outcome)] {
        state.withLock { s in
            defer { s.completions = [] }
            return s.completions
        }
    }

    func requeueCompletions(_ batch: [(Lease, Outcome)]) {
        state.withLock { $0.completions.insert(contentsOf: batch, at: 0) }
    }

    /// The driver has recorded these outcomes: the jobs leave the in-flight set.
    func recordFinished(_ leases: [Lease]) {
        state.withLock { s in
            s.finishedCount += leases.count
            s.unreported -= leases.count
            for lease in leases { s.inFlight.removeValue(forKey: lease) }
        }
        capacity.signal()
    }
}
