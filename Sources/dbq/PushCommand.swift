import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Queue
import RedisQueue

/// `dbq push`: each kind is a subcommand with only its options and the queue options
/// (dbq push backup --database main --wait); `dbq push job KIND --payload JSON` (the
/// default, so `dbq push noop`) pushes any kind from JSON, one or many.
struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push a job onto a queue (prints its id).",
        discussion: "dbq push KIND [options]: 'dbq push KIND --help' lists that kind's options. Any kind, from JSON: dbq push job KIND --payload JSON (or --payload-file, or --bulk FILE for many).",
        subcommands: [PushAny.self, PushKind<BackupOptions>.self, PushKind<BaseBackupOptions>.self, PushKind<PITRRestoreOptions>.self, PushKind<VerifyBaseBackupOptions>.self, PushKind<BaseBackupRetentionOptions>.self, PushKind<RestoreOptions>.self, PushKind<VerifyBackupOptions>.self,
                      PushKind<RetentionOptions>.self, PushKind<ExportOptions>.self, PushKind<ImportOptions>.self, PushKind<SnapshotOptions>.self,
                      PushKind<SnapshotRetentionOptions>.self, PushKind<RollbackOptions>.self, PushKind<MigrateOptions>.self, PushKind<MigrateRevertOptions>.self,
                      PushKind<ValidateIntegrityOptions>.self, PushKind<AdviceOptions>.self, PushApplyAdvice.self, PushKind<CreateIndexOptions>.self,
                      PushKind<DropIndexOptions>.self, PushKind<ReindexOptions>.self, PushKind<MaintenanceOptions>.self, PushKind<HealthOptions>.self,
                      PushKind<StatsOptions>.self, PushKind<PartitionsOptions>.self],
        defaultSubcommand: PushAny.self)
}

/// Any kind: `dbq push backup --database main --wait`.
struct PushAny: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Push a job of any kind from JSON (the default: 'dbq push noop').",
        discussion: """
            The payload is checked against the kind before it is queued: a payload of the \
            wrong shape is refused here, not by a worker later. With --unique-key, a push \
            while a job with the same key is queued or running merges into that job: its \
            id is printed and nothing new is queued. --wait shows progress and exits 0 if \
            the job succeeded, 1 if it ended dead or cancelled. A W3C trace context in \
            $TRACEPARENT is carried in the envelope.
            """)

    @Argument(help: "The job kind (any registered kind: noop, sleep, backup, …).")
    var kind: String

    @OptionGroup var redis: RedisOptions

    @OptionGroup(title: "Queue options") var job: QueueOptions

    @Option(help: "The payload as JSON (default: {}).")
    var payload: String?

    @Option(help: "Read the payload from this JSON file.")
    var payloadFile: String?

    @Option(help: "Push one job per line of this file (each line a JSON payload), pipelined.")
    var bulk: String?


    func validate() throws {
        if [payload != nil, payloadFile != nil, bulk != nil].filter({ $0 }).count > 1 {
            throw ValidationError("use one of --payload, --payload-file and --bulk")
        }
        if bulk != nil && job.wait { throw ValidationError("--wait takes one job; --bulk pushes many") }
    }

    func run() async throws {
        var outcome: Int32 = 0
        try await reportingFailures {
            let registry = Kinds.registry
            guard let defaults = registry.defaults(for: kind) else {
                throw ValidationError("unknown job kind '\(kind)'; known kinds: \(registry.kinds.joined(separator: ", "))")
            }
            let runAt = try job.runAt()
            let logger = makeLogger("dbq.push")
            let queue = try redis.queue(logger: logger, connections: 1)

            func envelope(_ payload: JSONValue) throws -> JobEnvelope {
                try job.envelope(kind: kind, payload: payload, defaults: defaults, runAt: runAt, registry: registry)
            }

            if let bulk {
                try await pushBulk(bulk, queue: queue, envelope: envelope)
                return
            }
            outcome = try await job.push(try envelope(try readPayload()), to: queue)
        }
        if outcome != 0 { throw ExitCode(outcome) }
    }

    private func readPayload() throws -> JSONValue {
        var text = payload ?? "{}"
        if let payloadFile {
            guard let data = FileManager.default.contents(atPath: payloadFile) else {
                throw ValidationError("cannot read payload file '\(payloadFile)'")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        do {
            return try JSONValue(json: text)
        } catch {
            throw ValidationError("the payload is not valid JSON: \(JSONErrorText.describe(error))")
        }
    }

    private func pushBulk(_ path: String, queue: RedisQueue, envelope: (JSONValue) throws -> JobEnvelope) async throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read '\(path)'") }
        // Check every line before pushing any, so a bad line leaves nothing half-pushed.
        var envelopes: [JobEnvelope] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                envelopes.append(try envelope(try JSONValue(json: String(line))))
            } catch {
                throw ValidationError("\(path):\(number + 1): \(error is DecodingError ? "not valid JSON" : "\(error)"); nothing was pushed")
            }
        }
        let started = ContinuousClock.now
        var merged = 0
        for start in stride(from: 0, to: envelopes.count, by: 1000) {
            let results = try await queue.pushMany(Array(envelopes[start..<min(envelopes.count, start + 1000)]))
            merged += results.filter { if case .merged = $0 { return true }; return false }.count
        }
        let seconds = (ContinuousClock.now - started).seconds
        print("pushed \(envelopes.count - merged) jobs (\(merged) merged) onto '\(job.queue)' in \(String(format: "%.2f", seconds)) s")
    }
}

/// What every push takes whatever the kind: where, when, how often, and whether to wait.
struct QueueOptions: ParsableArguments {
    @Option(help: "Queue name.")
    var queue = "default"

    @Option(help: "Priority from 0 to 9; higher runs first.")
    var priority = 5

    @Option(name: .customLong("in"), help: "Run after this delay (30s, 10m, 2h, 1d).")
    var delay: String?

    @Option(help: "Run at this time (ISO 8601, e.g. 2026-11-22T03:00:00Z).")
    var at: String?

    @Option(help: "Merge with a queued or running job holding the same key.")
    var uniqueKey: String?

    @Option(help: "Attempts before the job goes dead (default: the kind's).")
    var maxAttempts: Int?

    @Option(help: "Seconds one attempt may run (default: the kind's).")
    var timeout: Double?

    @Flag(help: "Wait for the job to end, showing its progress; exit with its outcome.")
    var wait = false

    func validate() throws {
        if delay != nil && at != nil { throw ValidationError("use --in or --at, not both") }
        if !JobEnvelope.priorities.contains(priority) { throw ValidationError("--priority must be from 0 to 9, not \(priority)") }
    }

    func runAt() throws -> Date? {
        if let delay { return Date().addingTimeInterval(try parseDuration(delay, option: "--in").seconds) }
        if let at { return try parseTime(at, option: "--at") }
        return nil
    }

    /// The envelope of a job of `kind`, checked against the registry.
    func envelope(kind: String, payload: JSONValue, defaults: (maxAttempts: Int, timeout: Duration, version: Int), runAt: Date?, registry: JobRegistry) throws -> JobEnvelope {
        let envelope = JobEnvelope(
            kind: kind, version: defaults.version, payload: payload, queue: queue, priority: priority,
            maxAttempts: maxAttempts ?? defaults.maxAttempts, timeoutSeconds: timeout ?? defaults.timeout.seconds,
            runAt: runAt, uniqueKey: uniqueKey, traceparent: environment("TRACEPARENT"))
        try envelope.validate()
        try registry.check(envelope)
        return envelope
    }

    /// Pushes one envelope, prints its id, and waits if asked: the exit code.
    func push(_ envelope: JobEnvelope, to queue: RedisQueue) async throws -> Int32 {
        let result = try await queue.push(envelope)
        print(result.id)
        if case .merged = result { stderrLine("merged into job \(result.id), which holds unique key '\(uniqueKey ?? "")' (or has this id)") }
        return wait ? try await Waiter(queue: queue, id: result.id, queueName: self.queue).run() : 0
    }

    /// Pushes one job of `kind` with `payload`: what a kind's own subcommand calls.
    func push(kind: String, payload: JSONValue, redis: RedisOptions) async throws {
        var outcome: Int32 = 0
        try await reportingFailures {
            let registry = Kinds.registry
            guard let defaults = registry.defaults(for: kind) else { throw ValidationError("unknown job kind '\(kind)'") }
            let queue = try redis.queue(logger: makeLogger("dbq.push"), connections: 1)
            outcome = try await push(try envelope(kind: kind, payload: payload, defaults: defaults, runAt: try runAt(), registry: registry), to: queue)
        }
        if outcome != 0 { throw ExitCode(outcome) }
    }
}

enum JSONErrorText {
    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String ?? context.debugDescription
        }
        return "\(error)"
    }
}

/// Follows one job until it ends: a live bar on a terminal, a line per change otherwise.
struct Waiter {
    let queue: RedisQueue
    let id: String
    let queueName: String

    func run() async throws -> Int32 {
        let tty = isatty(STDERR_FILENO) == 1
        var last = ""
        while true {
            guard let record = try await queue.job(id, queue: queueName) else {
                throw CheckFailure("job \(id) is gone (purged or expired)")
            }
            // A bar only where the job knows its total (a restore); a backup's size is known
            // only at its end, so it shows bytes. A success shows its result, not the last
            // progress report (which the worker's throttle may have left behind).
            let fraction = record.state == "succeeded" ? nil : record.progress?.fraction
            var line = "\(record.state)"
            if let fraction {
                let f = max(0, min(1, fraction))
                let filled = Int(f * 30)
                line += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] " + String(format: "%3.0f%%", f * 100)
            }
            if let message = record.progress?.message, record.state != "succeeded" { line += " \(message)" }
            if record.attempt > 1 { line += " (attempt \(record.attempt))" }
            if let error = record.error, record.state != "succeeded" { line += " — \(error)" }
            if line != last {
                if tty { FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8)) } else { stderrLine(line) }
                last = line
            }
            if ["succeeded", "dead", "cancelled"].contains(record.state) {
                if tty { stderrLine("") }
                if let result = record.result { print(result.jsonText) }
                return record.state == "succeeded" ? 0 : 1
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
