import ArgumentParser
import Backups
import DatabaseJobs
import DBQCommand
import DBQConfig
import Foundation
import Logging
import Queue

/// `dbq run`: like `dbq push`, each kind is a subcommand with only its options.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one job inline, in this process, without Redis (an in-memory queue).",
        discussion: "dbq run KIND [options]: 'dbq run KIND --help' lists that kind's options. Any kind, from JSON: dbq run job KIND --payload JSON.",
        subcommands: [RunAny.self, RunKind<BackupOptions>.self, RunKind<BaseBackupOptions>.self, RunKind<PITRRestoreOptions>.self, RunKind<VerifyBaseBackupOptions>.self, RunKind<BaseBackupRetentionOptions>.self, RunKind<RestoreOptions>.self, RunKind<VerifyBackupOptions>.self,
                      RunKind<RetentionOptions>.self, RunKind<ExportOptions>.self, RunKind<ImportOptions>.self, RunKind<SnapshotOptions>.self,
                      RunKind<SnapshotRetentionOptions>.self, RunKind<RollbackOptions>.self, RunKind<MigrateOptions>.self, RunKind<MigrateRevertOptions>.self,
                      RunKind<ValidateIntegrityOptions>.self, RunKind<CreateIndexOptions>.self, RunKind<DropIndexOptions>.self, RunKind<ReindexOptions>.self,
                      RunKind<MaintenanceOptions>.self, RunKind<PartitionsOptions>.self],
        defaultSubcommand: RunAny.self)
}

struct RunAny: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Run one job of any kind inline from JSON (the default: 'dbq run noop').",
        discussion: "Prints the job's result as JSON; exits 0 if it succeeded, 1 if it ended dead.")

    @Argument(help: "The job kind.") var kind: String
    @Option(help: "The payload as JSON (default: {}).") var payload = "{}"
    @Option(help: "Attempts (default: the kind's).") var maxAttempts: Int?
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await runInline(kind: kind, config: config, maxAttempts: maxAttempts) { loaded in
            do { return try JSONValue(json: payload) } catch { throw ValidationError("the payload is not valid JSON: \(JSONErrorText.describe(error))") }
        }
    }
}

/// Runs one job of `kind` in this process with an in-memory queue and the worker's code;
/// prints its result; exits 1 unless it succeeded.
func runInline(kind: String, config: ConfigOptions, maxAttempts: Int?, payload: (DBQConfiguration) throws -> JSONValue) async throws {
    var failed = false
    try await reportingFailures {
        let loaded = try config.load()
        let backupEnvironment = JobEnvironment(configuration: loaded, locks: MemoryLocks(), logger: makeLogger("dbq.run"))
        let registry = Kinds.registry { backupEnvironment }
        guard let defaults = registry.defaults(for: kind) else {
            throw ValidationError("unknown job kind '\(kind)'; known kinds: \(registry.kinds.joined(separator: ", "))")
        }
        let value = try payload(loaded)
        let envelope = JobEnvelope(kind: kind, version: defaults.version, payload: value, queue: "inline",
                                   maxAttempts: maxAttempts ?? defaults.maxAttempts, timeoutSeconds: defaults.timeout.seconds)
        try registry.check(envelope)
        let queue = MemoryQueue()
        _ = try await queue.push(envelope)
        // The outcome is printed below; the worker's own log only when asked for.
        var logger = makeLogger("dbq.run")
        if environment("DBQ_LOG_LEVEL") == nil { logger.logLevel = .critical }
        let worker = Worker(driver: queue, registry: registry, configuration: WorkerConfiguration(
            queues: [("inline", 1)], concurrency: 1, idleWait: .milliseconds(50),
            retryPolicy: RetryPolicy(backoff: .init(base: .milliseconds(200), cap: .seconds(5))),
            workerID: "inline", exitWhenIdle: true), logger: logger)
        try await worker.run()
        guard let record = queue.record(envelope.id) else { throw CheckFailure("the job vanished") }
        if let result = record.result { print(result.jsonText) }
        if record.state != .succeeded {
            stderrLine("dbq: job \(record.state.rawValue) after \(record.attempt) attempt\(record.attempt == 1 ? "" : "s"): \(record.error ?? "?")")
            failed = true
        }
    }
    if failed { throw ExitCode.failure }
}
