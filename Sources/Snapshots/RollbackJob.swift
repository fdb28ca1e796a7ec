import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue
import Synchronization

/// `rollback`: a snapshot loaded back over its tables in one transaction — lock them
/// (under `lock_timeout`, retried with backoff), check nothing moved on, empty them, load
/// the rows, reset the owned sequences, commit. Refused, before changing anything, when a
/// table's shape differs from the snapshot's or a table outside it references one in it.
public struct RollbackJob: SchemaChangeJob {
    public static let kind = "rollback"

    public struct Payload: Codable, Sendable {
        public var database: String
        public var storage: String?
        /// A snapshot id, job id or unambiguous prefix, or `latest`.
        public var snapshot: String
        /// Required to change anything: a rollback discards every change since the snapshot.
        public var confirm: Bool?
        /// Report rows per table now and in the snapshot, and whether it would be refused.
        public var dryRun: Bool?
        /// `lock_timeout` per attempt to lock the tables (default 2000).
        public var lockTimeoutMs: Int?
        /// Tables with at least this many rows in the snapshot are loaded without their
        /// indexes, which are built after (default 50,000).
        public var rebuildIndexesFrom: Int64?

        public init(database: String, storage: String? = nil, snapshot: String, confirm: Bool? = nil, dryRun: Bool? = nil, lockTimeoutMs: Int? = nil,
                    rebuildIndexesFrom: Int64? = nil) {
            self.rebuildIndexesFrom = rebuildIndexesFrom
            self.database = database
            self.storage = storage
            self.snapshot = snapshot
            self.confirm = confirm
            self.dryRun = dryRun
            self.lockTimeoutMs = lockTimeoutMs
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let dryRun = payload.dryRun ?? false
        guard dryRun || payload.confirm == true else {
            throw JobError.permanent("a rollback replaces every row of the snapshot's tables (changes since it are lost): add --confirm, or --dry-run to see rows now and in the snapshot")
        }
                let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let entry = try await SnapshotCatalog.load(store, database: payload.database).find(payload.snapshot, database: payload.database)
        let retry = LockRetry(lockTimeoutMs: payload.lockTimeoutMs)
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await Self.rollback(entry, payload: payload, url: url, store: store, retry: retry, context: context)
        }
    }

    static func rollback(_ entry: SnapshotCatalog.Entry, payload: Payload, url: PostgresConnectionString, store: any ObjectStore,
                         retry: LockRetry, context: JobContext) async throws -> JSONValue {
        try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq rollback", logger: context.logger) { connection in
            try await rollback(entry, payload: payload, url: url, store: store, retry: retry, context: context, connection: connection)
        }
    }

    private static func rollback(_ entry: SnapshotCatalog.Entry, payload: Payload, url: PostgresConnectionString, store: any ObjectStore,
                         retry: LockRetry, context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let manifest = entry.manifest
        let started = ContinuousClock.now
        let names = try manifest.tables.map { try PostgresIdentifier.qualified(schema: $0.schema, name: $0.name) }
        var result = Result(snapshot: manifest.id, database: payload.database)

        if payload.dryRun ?? false {
            _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            // Read only; the scope closes the connection, which ends the transaction.
            try await check(manifest, database: payload.database, connection: connection)
            var tables: [String: Result.Rows] = [:]
            for (table, name) in zip(manifest.tables, names) {
                let now = try await connection.query("SELECT count(*) FROM \(name)").scalar.flatMap { Int64($0) } ?? 0
                tables[table.qualifiedName] = Result.Rows(now: now, snapshot: table.rows)
            }
            result.dryRun = true
            result.tables = .dryRun(tables)
            return try result.json
        }

        // Before any lock: the shape is checked (refused early; checked again under the
        // locks), and every object is read once: its size and SHA-256 checked, decompressed,
        // its rows counted. A remote store's objects are kept in a local staging folder
        // meanwhile, so under the locks only the local read and the COPY run.
        try await check(manifest, database: payload.database, connection: connection)
        let staging = try await Staging.prepare(entry, store: store, jobID: context.id, context: context)
        defer { staging.remove() }
        let source = staging.store
        let stagedSeconds = (ContinuousClock.now - started).seconds
        let waits = Mutex(0)
        let rebuiltCount = Mutex(0)
        let lockedSeconds = Mutex(0.0)
        let loaded: [String: Int64] = try await retry.run(connection, what: "rollback of \(manifest.tables.count) tables of '\(payload.database)'",
                                                          logger: context.logger, waited: { n in
            waits.withLock { $0 = n }
            await context.progress(JobProgress(message: "waiting for locks on the tables (attempt \(n + 1))"))
        }) {
            _ = try await connection.execute("BEGIN")
            var sequencesSet = false
            var before: [(String, Int64, Bool)] = []
            do {
                _ = try await connection.execute("LOCK TABLE \(names.joined(separator: ", ")) IN ACCESS EXCLUSIVE MODE")
                let locked = ContinuousClock.now
                try await check(manifest, database: payload.database, connection: connection)
                _ = try await connection.execute("SET CONSTRAINTS ALL DEFERRED")
                // The application's triggers stay out of the restore: COPY would fire
                // its row triggers (a BEFORE INSERT stamping updated_at rewrites every row)
                // and TRUNCATE its truncate triggers. Each enabled one is disabled inside this
                // transaction and set back as it was before the commit (ALTER TABLE is
                // transactional: a failed rollback leaves them as they were).
                let inside = Set(manifest.tables.map(\.qualifiedName))
                let triggers = try await SnapshotQueries.userTriggers(connection).filter { inside.contains($0.table) && $0.enabled != "D" }
                for trigger in triggers { _ = try await connection.execute(try Self.alterTrigger(trigger, enable: false)) }
                _ = try await connection.execute("TRUNCATE \(names.joined(separator: ", "))")
                let rebuild = try IndexRebuild.plan(
                    rebuilt: IndexRebuild.rebuilt(manifest.tables, threshold: payload.rebuildIndexesFrom ?? 50_000),
                    inside: Set(manifest.tables.map(\.qualifiedName)), order: manifest.tables.map(\.qualifiedName),
                    constraints: try await SnapshotQueries.keyConstraints(connection), indexes: try await SnapshotQueries.plainIndexes(connection))
                for statement in rebuild.drop { _ = try await connection.execute(statement) }
                rebuiltCount.withLock { $0 = rebuild.objects }
                var loaded: [String: Int64] = [:]
                for (index, (table, name)) in zip(manifest.tables, names).enumerated() {
                    let columns = try table.columns.map { try PostgresIdentifier.quoted($0) }.joined(separator: ", ")
                    let reader = try ArtefactReader(folder: entry.folder, objects: table.objects, store: source, codec: manifest.codec,
                                                    family: "snapshot", consequence: "nothing was rolled back")
                    // FREEZE: the table was emptied in this transaction, so its rows can be
                    // written frozen (no hint-bit rewrite or freeze vacuum later).
                    let rows = try await connection.copyIn("COPY \(name) (\(columns)) FROM STDIN (FORMAT binary, FREEZE)", from: reader.stream())
                    guard Int64(rows) == table.rows else {
                        throw JobError.permanent("table \(table.qualifiedName): the snapshot holds \(table.rows) rows but \(rows) were loaded; nothing was rolled back")
                    }
                    loaded[table.qualifiedName] = Int64(rows)
                    await context.progress(JobProgress(fraction: Double(index + 1) / Double(names.count), rows: loaded.values.reduce(0, +),
                                                       message: "\(index + 1) of \(names.count) tables loaded"))
                }
                if !rebuild.create.isEmpty {
                    await context.progress(JobProgress(fraction: 1, message: "building \(rebuild.objects) indexes and constraints"))
                }
                for statement in rebuild.create { _ = try await connection.execute(statement) }
                for trigger in triggers { _ = try await connection.execute(try Self.alterTrigger(trigger, enable: true)) }
                // Sequences are not transactional: set last, just before the commit, and put
                // back if the commit fails (a sequence behind its table's rows would hand out
                // taken keys).
                for sequence in manifest.sequences {
                    let now = try await connection.query("SELECT last_value, is_called FROM \(sequence.name)")
                    if let value = now.first?[0].flatMap({ Int64($0) }) { before.append((sequence.name, value, now.first?[1] == "t")) }
                }
                sequencesSet = true
                for sequence in manifest.sequences {
                    _ = try await connection.query("SELECT setval($1::regclass, $2, $3)",
                                                   [PostgresParameter(sequence.name), PostgresParameter(String(sequence.lastValue)),
                                                    PostgresParameter(sequence.isCalled ? "true" : "false")])
                }
                _ = try await connection.execute("COMMIT")
                lockedSeconds.withLock { $0 = (ContinuousClock.now - locked).seconds }
                return loaded
            } catch {
                _ = try? await connection.execute("ROLLBACK")
                if sequencesSet {
                    for (name, value, called) in before {
                        _ = try? await connection.query("SELECT setval($1::regclass, $2, $3)",
                                                        [PostgresParameter(name), PostgresParameter(String(value)), PostgresParameter(called ? "true" : "false")])
                    }
                }
                throw error
            }
        }
        result.stagedSeconds = stagedSeconds
        result.stagingNote = staging.note
        result.lockedSeconds = lockedSeconds.withLock { $0 }
        result.tables = .loaded(loaded)
        result.rows = loaded.values.reduce(0, +)
        result.sequences = Dictionary(uniqueKeysWithValues: manifest.sequences.map { ($0.name, $0.lastValue) })
        result.lockWaits = waits.withLock { $0 }
        result.indexesRebuilt = rebuiltCount.withLock { $0 }
        result.seconds = (ContinuousClock.now - started).seconds
        return try result.json
    }

    /// What a rollback loaded per table (or, dry, the rows now and in the snapshot).
    public struct Result: JobResult {
        public struct Rows: Encodable, Sendable {
            public var now: Int64
            public var snapshot: Int64
        }
        public enum Tables: Encodable, Sendable {
            case loaded([String: Int64])
            case dryRun([String: Rows])
            public func encode(to encoder: any Encoder) throws {
                switch self {
                case .loaded(let rows): try rows.encode(to: encoder)
                case .dryRun(let rows): try rows.encode(to: encoder)
                }
            }
        }
        public var snapshot: String
        public var database: String
        public var dryRun: Bool?
        public var tables: Tables?
        public var rows: Int64?
        /// Each owned sequence's value, as restored.
        public var sequences: [String: Int64]?
        public var lockWaits: Int?
        public var indexesRebuilt: Int?
        public var seconds: Double?
        /// Downloading, checking and staging, before any lock.
        public var stagedSeconds: Double?
        /// Where the objects were read from under the locks when not a local copy (the
        /// store is local already, or the staging folder lacked the space).
        public var stagingNote: String?
        /// How long the tables were locked (the swap).
        public var lockedSeconds: Double?
    }

    /// `ALTER TABLE … DISABLE TRIGGER`, or `ENABLE [REPLICA | ALWAYS] TRIGGER` as it was.
    static func alterTrigger(_ trigger: SnapshotQueries.Trigger, enable: Bool) throws -> String {
        let parts = trigger.table.split(separator: ".", maxSplits: 1).map(String.init)
        let table = try PostgresIdentifier.qualified(schema: parts[0], name: parts[1])
        let name = try PostgresIdentifier.quoted(trigger.name)
        guard enable else { return "ALTER TABLE \(table) DISABLE TRIGGER \(name)" }
        switch trigger.enabled {
        case "R": return "ALTER TABLE \(table) ENABLE REPLICA TRIGGER \(name)"
        case "A": return "ALTER TABLE \(table) ENABLE ALWAYS TRIGGER \(name)"
        default: return "ALTER TABLE \(table) ENABLE TRIGGER \(name)"
        }
    }

    /// Refuses (permanently, before any change) a snapshot whose tables changed shape, or
    /// one a table outside it references.
    static func check(_ manifest: SnapshotManifest, database: String, connection: PostgresConnection) async throws {
        let shapes = try await SnapshotQueries.shapes(connection)
        // A v1 snapshot did not record triggers: compared without them.
        let recordsTriggers = manifest.format != "dbq.snapshot.v1"
        let wanted = Dictionary(uniqueKeysWithValues: manifest.tables.map { ($0.qualifiedName, $0.shape) })
        let current = Dictionary(uniqueKeysWithValues: manifest.tables.map { table in
            (table.qualifiedName, shapes[table.qualifiedName].map { recordsTriggers ? $0.shape : SchemaShape.withoutTriggers($0.shape) })
        })
        let differences = SchemaShape.differences(snapshot: wanted, current: current)
        if !differences.isEmpty {
            let version = try await SnapshotQueries.migrationVersion(connection)
            let versions = manifest.migrationVersion == version ? ""
                : " The snapshot was taken at migration version \(manifest.migrationVersion ?? "none"), the database is at \(version ?? "none"): revert to \(manifest.migrationVersion ?? "before the first migration") first."
            throw JobError.permanent("snapshot \(manifest.id) does not fit database '\(database)' any more: \(differences.joined(separator: "; ")).\(versions) Nothing was rolled back")
        }
        let inside = Set(manifest.tables.map(\.qualifiedName))
        let outside = try await SnapshotQueries.foreignKeys(connection).filter { inside.contains($0.referenced) && !inside.contains($0.table) }
        if !outside.isEmpty {
            throw JobError.permanent("table " + outside.map { "\($0.table) references \($0.referenced) (constraint \($0.name))" }.joined(separator: ", ")
                + " but is not in snapshot \(manifest.id): emptying the snapshot's tables would break those references; take a snapshot that includes \(Set(outside.map(\.table)).sorted().joined(separator: ", ")). Nothing was rolled back")
        }
    }
}
