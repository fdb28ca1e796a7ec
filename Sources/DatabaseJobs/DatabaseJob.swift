import Queue

/// A job kind that works on the configured databases and storages. It holds nothing: the
/// worker's environment is handed to each run (the registry keeps how to make it, and a
/// pusher, which only decodes payloads, never makes it).
public protocol DatabaseJob: JobKind {
    init()
    func run(_ payload: Payload, in environment: JobEnvironment, context: JobContext) async throws -> JSONValue?
}

/// A database job bound to the environment its runs get.
struct BoundJob<J: DatabaseJob>: Job {
    typealias Payload = J.Payload
    static var kind: String { J.kind }
    static var payloadVersion: Int { J.payloadVersion }
    static var defaultMaxAttempts: Int { J.defaultMaxAttempts }
    static var defaultTimeout: Duration { J.defaultTimeout }
    static var lockClass: DatabaseLockClass? { J.lockClass }
    static func upcast(_ payload: JSONValue, from version: Int) throws(JobError) -> JSONValue { try J.upcast(payload, from: version) }
    static func recordMetrics(result: JSONValue) { J.recordMetrics(result: result) }

    let job: J
    let environment: JobEnvironment.Provider

    func run(_ payload: Payload, context: JobContext) async throws -> JSONValue? {
        try await job.run(payload, in: try environment(), context: context)
    }
}

extension JobRegistry {
    /// Registers a database job kind; `environment` is called when one of its jobs runs.
    public mutating func register<J: DatabaseJob>(_ kind: J.Type, environment: @escaping JobEnvironment.Provider) {
        register(BoundJob(job: J(), environment: environment))
    }
}

/// A job that reads a database to write an artefact of it (a backup, an export, a
/// snapshot): it shares the database with other readers, and is tried three times, each
/// attempt for up to six hours.
public protocol ArtefactJob: DatabaseJob {}

extension ArtefactJob {
    public static var lockClass: DatabaseLockClass? { .read }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }
}

/// A job that changes a database's schema or replaces its rows (migrate, migrate-revert,
/// rollback, import): it holds the database alone, and is tried three times, each attempt
/// for up to six hours.
public protocol SchemaChangeJob: DatabaseJob {}

extension SchemaChangeJob {
    public static var lockClass: DatabaseLockClass? { .ddl }
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }
}

/// A job that removes old artefacts of a database from a store (retention): it takes no
/// database lock (the store's artefact lock orders it with writers), and is tried three
/// times, each attempt for up to an hour.
public protocol ArtefactCleanupJob: DatabaseJob {}

extension ArtefactCleanupJob {
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(3600) }
}
