import Anonymization
import Backups
import Codecs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `export`: tables read in one snapshot with `COPY … TO STDOUT`, masked row by row by
/// the policy (or kept, without one), compressed and written like backups (objects
/// first, `schema.sql`, the manifest last under the lease).
public struct ExportJob: Job {
    public static let kind = "export"
    public static var defaultMaxAttempts: Int { 3 }
    public static var defaultTimeout: Duration { .seconds(6 * 3600) }

    public struct Payload: Codable, Sendable {
        /// A database name from the configuration.
        public var database: String
        public var storage: String?
        /// `schema.table` (or a table name in `public`); nil or empty: every table.
        public var tables: [String]?
        /// Table → SQL condition (`created_at > now() - interval '30 days'`).
        public var conditions: [String: String]?
        /// The policy's YAML text (the pusher reads the file: workers need not have it).
        public var policy: String?
        public var codec: String?
        /// copy (default), csv or jsonl.
        public var format: String?
        /// Also export every row the exported rows reference, so every foreign key resolves.
        public var followReferences: Bool?

        public init(database: String, storage: String? = nil, tables: [String]? = nil, conditions: [String: String]? = nil,
                    policy: String? = nil, codec: String? = nil, format: String? = nil, followReferences: Bool? = nil) {
            self.database = database
            self.storage = storage
            self.tables = tables
            self.conditions = conditions
            self.policy = policy
            self.codec = codec
            self.format = format
            self.followReferences = followReferences
        }
    }

    let environment: @Sendable () throws -> BackupEnvironment

    public init(environment: @escaping @Sendable () throws -> BackupEnvironment) {
        self.environment = environment
    }

    public func run(_ payload: Payload, context: JobContext) async throws -> JSONValue? {
        let env = try environment()
        let codec: Codec
        let format: RowFormat
        do {
            codec = try Codec(parsing: payload.codec ?? "zstd")
            format = try RowFormat(parsing: payload.format ?? "copy")
        } catch {
            throw BackupError.permanent("\(error)")
        }
        let policy: AnonymizationPolicy?
        let key: AnonymizationKey?
        do {
            policy = try payload.policy.map { try AnonymizationPolicy.parse($0) }
            key = policy == nil ? nil : try AnonymizationKey.fromEnvironment()
        } catch {
            throw BackupError.permanent("\(error)")
        }
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let limit = env.objectLimit(payload.storage)
        return try await env.locks.withDatabaseLock(payload.database, kind: Self.kind, owner: "\(context.id)#\(context.fencingToken)",
                                                    wait: env.lockWait) {
            try await Self.export(payload, url: url, store: store, objectLimit: limit, codec: codec, format: format, policy: policy,
                                  key: key, env: env, context: context)
        }
    }

    static func export(_ payload: Payload, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec,
                       format: RowFormat, policy: AnonymizationPolicy?, key: AnonymizationKey?, env: BackupEnvironment,
                       context: JobContext) async throws -> JSONValue {
        let startedAt = Date()
        let id = BackupLayout.backupID(startedAt: startedAt, jobID: context.id)
        let folder = ExportLayout.folder(database: payload.database, id: id)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(url.raw, logger: context.logger, applicationName: "dbq export")
        } catch {
            throw classifyConnect(error, database: payload.database)
        }
        defer { Task { await connection.close() } }
        var prepared = try await prepare(payload, policy: policy, connection: connection)
        let catalog = prepared.selection.catalog
        prepared.plan = try await fillRedactValues(prepared.plan, catalog: catalog, key: key, connection: connection)

        let tables = try await ArtefactCommit.run(store: store, folder: folder, context: context) { commit -> (ExportManifest, [ExportManifest.Table]) in
            var tables: [ExportManifest.Table] = []
            for table in catalog.dependencyOrder {
                let columns = prepared.plan.tables[table.qualifiedName] ?? []
                let groups = prepared.plan.kAnonymity[table.qualifiedName].map { KAnonymityGroups($0, columns: columns.map(\.name)) }
                let transformer = RowTransformer(columns: columns, key: key, format: format, groups: groups)
                let sql = try ExportQuery.copy(table, columns: columns, filter: prepared.selection.filter(table.qualifiedName), key: key)
                let pipe = try MaskingPipe(source: connection.copyOut(sql), transformer: transformer, compressor: try Compressor(codec: codec))
                let name = ExportLayout.objectName(table.qualifiedName, format: format, codec: codec)
                let segments: [SegmentInfo]
                do {
                    segments = try await SegmentedWrite.put(store, key: folder + "/" + name, from: pipe.stream(), limit: objectLimit)
                } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true {
                    // A condition or sql rule the server rejects: named, and not retried.
                    throw BackupError.permanent("table \(table.qualifiedName) could not be read as asked (check its --where condition and sql rules): \(error.message)")
                }
                commit.record(segments.map(\.key))
                var outcome: KAnonymityGroups.Outcome?
                if let groups {
                    do { outcome = try groups.outcome() } catch { throw BackupError.permanent("\(error); nothing was exported") }
                    if let outcome, !outcome.passed, outcome.mode == .refuse {
                        throw BackupError.permanent("k-anonymity (\(groups.requirement.path), k = \(outcome.k)) does not hold: \(outcome.summary); generalize the quasi-identifiers or set mode: report. Nothing was exported")
                    }
                }
                let condition: String? = switch prepared.selection.rows[table.qualifiedName] {
                case .condition(let c)?: c
                case .referenced?: "rows referenced by exported rows"
                default: nil
                }
                tables.append(ExportManifest.Table(
                    schema: table.schema, name: table.name, rows: pipe.rows, condition: condition,
                    columns: columns.map { c in .init(name: c.name, type: table.column(c.name)?.type ?? "", rule: c.rule.identity, source: c.source) },
                    objects: segments.enumerated().map { i, s in
                        ManifestObject(name: commit.name(s.key), size: s.size, sha256: s.sha256, rawSize: i == 0 ? pipe.rawBytes : 0)
                    },
                    kAnonymity: outcome))
                await context.progress(JobProgress(rows: tables.reduce(0) { $0 + $1.rows }, message: "\(tables.count) of \(catalog.tables.count) tables"))
            }
            let ddl = try await schemaSQL(catalog, snapshot: prepared.snapshot, url: url, env: env)
            try await commit.put("schema.sql", bytes: ddl)
            _ = try await connection.execute("COMMIT")
            let manifest = ExportManifest(
                format: ExportManifest.currentFormat, id: id, database: payload.database, startedAt: startedAt, finishedAt: Date(),
                job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken),
                serverVersion: prepared.serverVersion, codec: codec, rowFormat: format, snapshot: prepared.snapshot,
                followReferences: prepared.selection.followsReferences ? true : nil,
                policyDigest: policy?.digest, keyFingerprint: policy == nil ? nil : key?.fingerprint,
                tables: tables, schema: ManifestObject(name: "schema.sql", size: Int64(ddl.count), sha256: sha256Hex(ddl), rawSize: Int64(ddl.count)))
            return (manifest, tables)
        }
        var result: [String: JSONValue] = [
            "id": .string(id), "database": .string(payload.database), "store": .string(store.url), "folder": .string(folder),
            "tables": .number(Double(tables.count)), "rows": .number(Double(tables.reduce(0) { $0 + $1.rows })),
            "masked": .bool(policy != nil), "format": .string(format.rawValue),
            "rowsPerTable": .object(Dictionary(uniqueKeysWithValues: tables.map { ($0.qualifiedName, .number(Double($0.rows))) })),
        ]
        let reports = tables.compactMap(\.kAnonymity).filter { !$0.passed }
        if !reports.isEmpty { result["kAnonymity"] = .array(reports.map { .string($0.summary) }) }
        return .object(result)
    }

    /// What an export (or its plan) decides before reading a row, in one open transaction
    /// on `connection`: the snapshot, the tables and their rows, every column's rule.
    public struct Prepared: Sendable {
        public var snapshot: String
        public var serverVersion: String
        public var selection: ExportSelection
        public var plan: AnonymizationPlan
        /// Rows chosen per partial table when following references (exact).
        public var chosenRows: [String: Int64]
    }

    /// Opens the export's transaction (repeatable read; read-only once the rows to follow
    /// are chosen), exports its snapshot, reads the catalog, resolves the selection, checks
    /// the policy against it and chooses the rows by reference.
    public static func prepare(_ payload: Payload, policy: AnonymizationPolicy?, connection: PostgresConnection) async throws -> Prepared {
        let follow = payload.followReferences ?? false
        _ = try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" + (follow ? "" : ", READ ONLY"))
        let facts = try await connection.query("SELECT pg_export_snapshot(), current_setting('server_version')")
        guard let snapshot = facts.first?[0], let serverVersion = facts.first?[1] else {
            throw BackupError.retryable("database '\(payload.database)': could not export a snapshot")
        }
        let full = try await ExportCatalogQuery.load(connection)
        let selection = try ExportSelection.resolve(full, tables: payload.tables, conditions: payload.conditions, followReferences: follow)
        let plan: AnonymizationPlan
        do {
            plan = try policy.map { try $0.plan(for: selection.catalog) } ?? .keepingEverything(selection.catalog)
        } catch {
            throw BackupError.permanent("the policy does not fit database '\(payload.database)': \(error)")
        }
        let chosen: [String: Int64]
        do {
            chosen = try await selection.materialize(connection)
        } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true {
            throw BackupError.permanent("a --where condition does not work in database '\(payload.database)': \(error.message)")
        }
        if follow { _ = try await connection.execute("SET TRANSACTION READ ONLY") }
        return Prepared(snapshot: snapshot, serverVersion: serverVersion, selection: selection, plan: plan, chosenRows: chosen)
    }

    /// Gives every `redact` rule that names `values:` columns their originals (distinct,
    /// read in the export's snapshot, at most `RedactValues.limit`) and the values the
    /// plan masks them to.
    static func fillRedactValues(_ plan: AnonymizationPlan, catalog: TableCatalog, key: AnonymizationKey?,
                                 connection: PostgresConnection) async throws -> AnonymizationPlan {
        var plan = plan
        var cache: [String: [String: String]] = [:]
        for (table, columns) in plan.tables {
            for (i, column) in columns.enumerated() {
                guard let redact = column.rule as? Redact, !redact.valueColumns.isEmpty, let key else { continue }
                var pairs: [String: String] = [:]
                for path in redact.valueColumns {
                    if cache[path] == nil {
                        let parts = path.split(separator: ".").map(String.init)
                        guard let owner = catalog.table(parts[0] + "." + parts[1]),
                              let target = plan.tables[owner.qualifiedName]?.first(where: { $0.name == parts[2] }) else { continue }
                        let qualified = try PostgresIdentifier.qualified(schema: owner.schema, name: owner.name)
                        let quoted = try PostgresIdentifier.quoted(parts[2])
                        let rows = try await connection.query(
                            "SELECT DISTINCT \(quoted)::text FROM ONLY \(qualified) WHERE \(quoted) IS NOT NULL AND length(\(quoted)::text) >= 3 LIMIT \(RedactValues.limit + 1)")
                        guard rows.count <= RedactValues.limit else {
                            throw BackupError.permanent("\(column.source).values: \(path) has more than \(RedactValues.limit) distinct values; redact can look for at most that many (name fewer columns)")
                        }
                        var map: [String: String] = [:]
                        let rule = target.rule.prepared(kind: target.kind, key: key)
                        for row in rows {
                            guard let original = row[0], let masked = rule.apply(original) else { continue }
                            map[original] = masked
                        }
                        cache[path] = map
                    }
                    pairs.merge(cache[path] ?? [:]) { a, _ in a }
                }
                plan.tables[table]![i].rule = redact.with(RedactValues(pairs))
            }
        }
        return plan
    }

    /// `pg_dump --schema-only` of the exported tables, in the export's snapshot.
    static func schemaSQL(_ catalog: TableCatalog, snapshot: String, url: PostgresConnectionString, env: BackupEnvironment) async throws -> [UInt8] {
        let (conninfo, childEnvironment) = url.childProcessArguments()
        var arguments = ["--schema-only", "--no-owner", "--no-privileges", "--snapshot=\(snapshot)", "--no-password", "--dbname=\(conninfo)"]
        for t in catalog.tables { arguments.append("--table=" + (try PostgresIdentifier.qualified(schema: t.schema, name: t.name))) }
        let process = try Subprocess(env.pgDump, arguments: arguments,
                                     environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 }, pipeStdout: true)
        let text = try await BlockingLane.detached { () throws -> [UInt8] in
            var out: [UInt8] = []
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 1)
            defer { buffer.deallocate() }
            while true {
                let n = try process.readStdout(into: buffer)
                if n == 0 { break }
                out += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            }
            return out
        }
        guard await process.wait() == 0 else { throw BackupError.retryable("pg_dump --schema-only failed: \(process.standardError)") }
        return text
    }
}

/// COPY text in, masked COPY text out, compressed: lines split across chunks are carried
/// over. The next chunk is read from the server while this one is masked; masking runs on
/// a lane of its own, a chunk's lines cut into runs masked side by side.
final class MaskingPipe: @unchecked Sendable {
    // @unchecked Sendable: `source` is advanced only by the one read in flight (`ahead`),
    // which the next pull awaits before starting another; the rest of the mutable state
    // is touched only on `lane`, one pull at a time (a stream is pulled serially).
    let lane = BlockingLane(label: "dbq.export")
    private var source: ByteStream.AsyncIterator
    private var ahead: Task<[UInt8]?, any Error>?
    /// The next chunk being masked while the caller hashes and writes this one.
    private var produced: Task<[UInt8]?, any Error>?
    private let transformer: RowTransformer
    /// One transformer and one output buffer per run of lines (see
    /// `RowTransformer.forAnotherThread`); buffers are reused from chunk to chunk, so no
    /// chunk costs fresh pages.
    private let runs: [MaskingRun]
    private let compressor: Compressor
    /// Lines not yet complete, then the newest chunk: reused.
    private var input: [UInt8] = []
    /// A chunk passed through whole ended without a newline.
    private var insideRow = false
    private var ended = false
    private var started = false
    private(set) var rows: Int64 = 0
    private(set) var rawBytes: Int64 = 0

    init(source: ByteStream, transformer: RowTransformer, compressor: Compressor) throws {
        // One run when nothing is masked, or when a k-anonymity count needs the rows in order.
        let workers = transformer.isIdentity || transformer.groups != nil ? 1 : min(4, max(1, ProcessInfo.processInfo.activeProcessorCount))
        self.source = source.makeAsyncIterator()
        self.transformer = transformer
        runs = (0..<workers).map { MaskingRun(transformer: $0 == 0 ? transformer : transformer.forAnotherThread()) }
        self.compressor = compressor
    }

    deinit {
        ahead?.cancel()
        produced?.cancel()
    }

    /// Three stages overlap: the server's next chunk is read, this one is masked, and the
    /// previous one is hashed and written by the caller. Each stage runs one chunk at a
    /// time, in order: a production starts only after the one before it has ended.
    func stream() -> ByteStream {
        ByteStream { [self] in
            let out = try await (produced ?? produce()).value
            produced = out == nil ? nil : produce()
            return out
        }
    }

    private func produce() -> Task<[UInt8]?, any Error> {
        Task { [self] in
            if ended { return nil }
            let chunk = try await (ahead ?? read()).value
            ahead = chunk == nil ? nil : read()
            return try await lane.run { () throws -> [UInt8]? in try self.process(chunk) }
        }
    }

    private func read() -> Task<[UInt8]?, any Error> {
        Task { [self] in
            var iterator = source
            defer { source = iterator }
            return try await iterator.next()
        }
    }

    private func process(_ chunk: [UInt8]?) throws -> [UInt8]? {
        guard let chunk else {
            ended = true
            guard input.isEmpty && !insideRow else { throw BackupError.retryable("the COPY stream ended inside a row") }
            // An empty table in CSV still has its header.
            let header = started ? [] : transformer.header
            started = true
            return try (header.isEmpty ? [] : compressor.compress(header)) + compressor.finish()
        }
        if transformer.isIdentity {
            // Nothing to mask: the bytes pass as they came; only rows are counted.
            rows += chunk.withUnsafeBytes { Self.countNewlines($0) }
            if let last = chunk.last { insideRow = last != 0x0A }
            rawBytes += Int64(chunk.count)
            return try compressor.compress(chunk)
        }
        input += chunk
        let end = input.withUnsafeBytes { Self.lastNewline(in: $0) }.map { $0 + 1 } ?? 0
        let count = try Self.transform(input[0..<end], runs: runs)
        var out: [UInt8] = []
        out.reserveCapacity(runs.reduce(started ? 0 : transformer.header.count) { $0 + $1.out.count })
        if !started {
            started = true
            out += transformer.header
        }
        for run in runs { out += run.out }
        rows += count
        input.removeSubrange(0..<end)
        rawBytes += Int64(out.count)
        return try compressor.compress(out)
    }
}

/// One run of lines' transformer and output, used by one thread at a time.
final class MaskingRun: @unchecked Sendable {
    // @unchecked Sendable: `out` and `failure` are written only by the one iteration of
    // `concurrentPerform` that owns this run, and read after it returns.
    let transformer: RowTransformer
    var out: [UInt8] = []
    var rows: Int64 = 0
    var failure: BackupError?
    init(transformer: RowTransformer) { self.transformer = transformer }
}

extension MaskingPipe {
    static func countNewlines(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        guard let base = bytes.baseAddress else { return 0 }
        var count: Int64 = 0
        var start = 0
        while start < bytes.count, let hit = memchr(base + start, 0x0A, bytes.count - start) {
            count += 1
            start = UnsafeRawPointer(hit) - base + 1
        }
        return count
    }

    static func lastNewline(in bytes: UnsafeRawBufferPointer) -> Int? {
        // Backwards from the end: a line is short, so this reads a few bytes.
        var i = bytes.count - 1
        while i >= 0 && bytes[i] != 0x0A { i -= 1 }
        return i >= 0 ? i : nil
    }

    /// Whole lines in, transformed lines out, in order: cut into one run per transformer
    /// at line ends, each masked on its own thread into its run's buffer.
    static func transform(_ lines: ArraySlice<UInt8>, runs: [MaskingRun]) throws -> Int64 {
        let parts = runs.count > 1 && lines.count >= 64 << 10 ? runs.count : 1
        var bounds = [lines.startIndex]
        lines.withUnsafeBytes { raw in
            for w in 1..<parts {
                let from = max(bounds.last! - lines.startIndex, raw.count * w / parts)
                if let hit = memchr(raw.baseAddress! + from, 0x0A, raw.count - from) {
                    bounds.append(lines.startIndex + (UnsafeRawPointer(hit) - raw.baseAddress!) + 1)
                }
            }
        }
        bounds.append(lines.endIndex)
        let cuts = bounds
        for run in runs {
            run.out.removeAll(keepingCapacity: true)
            run.rows = 0
            run.failure = nil
        }
        let body = { @Sendable (i: Int) in
            let run = runs[i]
            let transformer = run.transformer
            var out = run.out
            run.out = []
            defer { run.out = out }
            out.reserveCapacity((cuts[i + 1] - cuts[i]) * 5 / 4)
            var rows: Int64 = 0
            defer { run.rows = rows }
            do {
                try lines[cuts[i]..<cuts[i + 1]].withUnsafeBytes { raw in
                    guard let base = raw.baseAddress else { return }
                    var start = 0
                    while start < raw.count, let hit = memchr(base + start, 0x0A, raw.count - start) {
                        let newline = UnsafeRawPointer(hit) - base
                        try transformer.transform(UnsafeRawBufferPointer(rebasing: raw[start..<newline]), into: &out)
                        rows += 1
                        start = newline + 1
                    }
                }
            } catch {
                run.failure = BackupError.permanent("\(error)")
            }
        }
        if cuts.count == 2 { body(0) } else { DispatchQueue.concurrentPerform(iterations: cuts.count - 1, execute: body) }
        var rows: Int64 = 0
        for run in runs.prefix(cuts.count - 1) {
            if let failure = run.failure { throw failure }
            rows += run.rows
        }
        return rows
    }
}

extension JobRegistry {
    /// Registers `export` and `import`.
    public mutating func registerExportJobs(environment: @escaping @Sendable () throws -> BackupEnvironment) {
        register(ExportJob(environment: environment))
        register(ImportJob(environment: environment))
    }
}
