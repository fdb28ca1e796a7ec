import Anonymization
import Codecs
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `export`: tables read in one snapshot with `COPY … TO STDOUT`, masked row by row by
/// the policy (or kept, without one), compressed and written like backups (objects
/// first, `schema.sql`, the manifest last under the lease).
public struct ExportJob: ArtefactJob {
    public static let kind = "export"

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

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let codec = try Codec.payload(payload.codec)
        let format = try JobError.payload { try RowFormat(parsing: payload.format ?? "copy") }
        let policy: AnonymizationPolicy?
        let key: AnonymizationKey?
        do {
            policy = try payload.policy.map { try AnonymizationPolicy.parse($0) }
            key = policy == nil ? nil : try AnonymizationKey.fromEnvironment()
        } catch {
            throw JobError.permanent("\(error)")
        }
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let limit = env.objectLimit(payload.storage)
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            try await Self.export(payload, url: url, store: store, objectLimit: limit, codec: codec, format: format, policy: policy,
                                  key: key, env: env, context: context)
        }
    }

    static func export(_ payload: Payload, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec,
                       format: RowFormat, policy: AnonymizationPolicy?, key: AnonymizationKey?, env: JobEnvironment,
                       context: JobContext) async throws -> JSONValue {
        try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq export", logger: context.logger) { connection in
            try await export(payload, url: url, store: store, objectLimit: objectLimit, codec: codec, format: format, policy: policy, key: key, env: env, context: context, connection: connection)
        }
    }

    private static func export(_ payload: Payload, url: PostgresConnectionString, store: any ObjectStore, objectLimit: Int64, codec: Codec,
                       format: RowFormat, policy: AnonymizationPolicy?, key: AnonymizationKey?, env: JobEnvironment,
                       context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let startedAt = Date()
        let id = ArtefactLayout.id(startedAt: startedAt, jobID: context.id)
        let folder = ExportLayout.folder(database: payload.database, id: id)
        let recordKey = policy != nil && key != nil ? try await ExportKeyRecord.check(key!, store: store) : false
        var prepared = try await prepare(payload, policy: policy, connection: connection)
        let catalog = prepared.selection.catalog
        let snapshot = prepared.snapshot, serverVersion = prepared.serverVersion
        prepared.plan = try await fillRedactValues(prepared.plan, catalog: catalog, key: key, connection: connection)
        let typeDDL = try await ExportCatalogQuery.typeDefinitions(connection, tables: catalog.tables)

        let tables = try await ArtefactCommit.run(store: store, folder: folder, context: context) { commit -> (ExportManifest, [ExportManifest.Table]) in
            // The tables' DDL, read by pg_dump in the export's snapshot while the rows stream
            // (its start-up and catalog reads would otherwise add to every export's time).
            async let schema = schemaSQL(catalog, types: typeDDL, snapshot: snapshot, url: url, env: env, serverVersion: serverVersion, database: payload.database)
            var tables: [ExportManifest.Table] = []
            for table in catalog.dependencyOrder {
                let columns = prepared.plan.tables[table.qualifiedName] ?? []
                let requirement = prepared.plan.kAnonymity[table.qualifiedName]
                let sql = try ExportQuery.copy(table, columns: columns, filter: prepared.selection.filter(table.qualifiedName), key: key)
                // A table k-anonymity may refuse is checked before any of it is stored: a
                // first pass masks and counts its groups (in the same snapshot, so the
                // stored pass masks the same rows the same way) and keeps nothing.
                var outcome: KAnonymityGroups.Outcome?
                if let requirement, requirement.mode == .refuse {
                    let check = KAnonymityGroups(requirement, columns: columns.map(\.name))
                    let counting = try MaskingPipe(source: connection.copyOut(sql), transformer: RowTransformer(columns: columns, key: key, format: format, groups: check),
                                                   compressor: try Compressor(codec: .none), table: table.qualifiedName)
                    do {
                        for try await _ in counting.stream() {}
                    } catch let error as PostgresError where error.message.contains(Shuffle.oneRow) {
                        throw JobError.permanent("table \(table.qualifiedName): shuffle needs two rows or more to swap values between, and this export has one; nothing was exported (choose another rule for that column, or export more rows)")
                    } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true || error.sqlState == "25006" {
                        throw JobError.permanent("table \(table.qualifiedName) could not be read as asked (check its --where condition and sql rules): \(error.message)")
                    }
                    do { outcome = try check.outcome() } catch { throw JobError.permanent("\(error); nothing was exported") }
                    if let outcome, !outcome.passed {
                        throw JobError.permanent("k-anonymity (\(requirement.path), k = \(outcome.k)) does not hold: \(outcome.summary); generalize the quasi-identifiers or set mode: report. Nothing was exported")
                    }
                }
                let groups = outcome == nil ? requirement.map { KAnonymityGroups($0, columns: columns.map(\.name)) } : nil
                let transformer = RowTransformer(columns: columns, key: key, format: format, groups: groups)
                let pipe = try MaskingPipe(source: connection.copyOut(sql), transformer: transformer, compressor: try Compressor(codec: codec),
                                           table: table.qualifiedName)
                let name = ExportLayout.objectName(table.qualifiedName, format: format, codec: codec)
                let segments: [SegmentInfo]
                do {
                    segments = try await SegmentedWrite.put(store, key: folder + "/" + name, from: pipe.stream(), limit: objectLimit)
                } catch let error as PostgresError where error.message.contains(Shuffle.oneRow) {
                    throw JobError.permanent("table \(table.qualifiedName): shuffle needs two rows or more to swap values between, and this export has one; nothing was exported (choose another rule for that column, or export more rows)")
                } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true || error.sqlState == "25006" {
                    // A condition or sql rule the server rejects (or one that writes, in this
                    // read-only transaction): named, and not retried.
                    throw JobError.permanent("table \(table.qualifiedName) could not be read as asked (check its --where condition and sql rules): \(error.message)")
                }
                commit.record(segments.map(\.key))
                if let groups {
                    // Report mode: recorded with the table, never a refusal.
                    do { outcome = try groups.outcome() } catch { throw JobError.permanent("\(error); nothing was exported") }
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
            let ddl = try await schema
            try await commit.put("schema.sql", bytes: ddl)
            _ = try await connection.execute("COMMIT")
            var manifest = ExportManifest(
                format: ExportManifest.currentFormat, id: id, database: payload.database, startedAt: startedAt, finishedAt: Date(),
                job: JobStamp(id: context.id, attempt: context.attempt, fencingToken: context.fencingToken),
                serverVersion: prepared.serverVersion, codec: codec, rowFormat: format, snapshot: prepared.snapshot,
                followReferences: prepared.selection.followsReferences ? true : nil,
                policyDigest: policy?.digest, keyFingerprint: policy == nil ? nil : key?.fingerprint(),
                tables: tables, rawColumns: policy == nil ? nil : ExportManifest.rawColumns(tables), schema: ManifestObject(name: "schema.sql", size: Int64(ddl.count), sha256: sha256Hex(ddl), rawSize: Int64(ddl.count)))
            manifest.encryption = store.encryptionKeyFingerprint
            return (manifest, tables)
        }
        if recordKey, let key { try await ExportKeyRecord.record(key, store: store) }
        let reports = tables.compactMap(\.kAnonymity).filter { !$0.passed }
        return try Result(id: id, database: payload.database, store: store.url, folder: folder, tables: tables.count,
                          rows: tables.reduce(0) { $0 + $1.rows }, masked: policy != nil,
                          rawColumns: policy == nil ? nil : tables.flatMap { t in t.columns.filter { ExportManifest.Column.keeps($0.rule) != nil }.map { "\(t.qualifiedName).\($0.name)" } },
                          format: format.rawValue,
                          rowsPerTable: Dictionary(uniqueKeysWithValues: tables.map { ($0.qualifiedName, $0.rows) }),
                          kAnonymity: reports.isEmpty ? nil : reports.map(\.summary)).json
    }

    /// What an export reports: where it is and how many rows of each table it holds.
    public struct Result: JobResult {
        public var id: String
        public var database: String
        public var store: String
        public var folder: String
        public var tables: Int
        public var rows: Int64
        public var masked: Bool
        /// In a masked export, the columns exported as they are (`schema.table.column`).
        public var rawColumns: [String]?
        public var format: String
        public var rowsPerTable: [String: Int64]
        /// The k-anonymity checks that did not pass (reported, when the policy allows it).
        public var kAnonymity: [String]?
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
        // The text forms the masking rules read, whatever the database's or the role's
        // defaults (a date under `DateStyle = 'SQL, DMY'` is 23/04/1987, which no rule
        // reads as a date).
        _ = try await connection.query("""
            SELECT set_config('DateStyle', 'ISO, YMD', true), set_config('IntervalStyle', 'postgres', true),
                   set_config('TimeZone', 'UTC', true), set_config('extra_float_digits', '1', true),
                   set_config('bytea_output', 'hex', true)
            """)
        let facts = try await connection.query("SELECT pg_export_snapshot(), current_setting('server_version')")
        guard let snapshot = facts.first?[0], let serverVersion = facts.first?[1] else {
            throw JobError.retryable("database '\(payload.database)': could not export a snapshot")
        }
        let full = try await ExportCatalogQuery.load(connection)
        if let unknown = policy?.unknownTables(in: full), !unknown.isEmpty {
            throw JobError.permanent("the policy names what database '\(payload.database)' does not have: \(unknown.joined(separator: "; ")); fix the names (tables as schema.table). Nothing was exported")
        }
        let selection = try ExportSelection.resolve(full, tables: payload.tables, conditions: payload.conditions, followReferences: follow)
        let plan: AnonymizationPlan
        do {
            plan = try policy.map { try $0.plan(for: selection.catalog) } ?? .keepingEverything(selection.catalog)
        } catch {
            throw JobError.permanent("the policy does not fit database '\(payload.database)': \(error)")
        }
        let chosen: [String: Int64]
        do {
            chosen = try await selection.materialize(connection).rows
        } catch let error as PostgresError where error.sqlState?.hasPrefix("42") == true || error.sqlState == "25006" {
            throw JobError.permanent("a --where condition does not work in database '\(payload.database)': \(error.message)")
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
                            throw JobError.permanent("\(column.source).values: \(path) has more than \(RedactValues.limit) distinct values; redact can look for at most that many (name fewer columns)")
                        }
                        var map: [String: String] = [:]
                        // An original is replaced wherever it is found, whatever its own
                        // column's rule: by its masked value, or where that rule gives
                        // NULL or is computed by the server (no value of its own to put
                        // there), by a marker.
                        let rule = target.rule.prepared(kind: target.kind, key: key)
                        let marked = target.rule.computedByServer
                        for row in rows {
                            guard let original = row[0] else { continue }
                            do {
                                map[original] = marked ? RedactValues.marker : (try rule.apply(original) ?? RedactValues.marker)
                            } catch {
                                throw JobError.permanent("\(column.source).values: \(path): \(error)")
                            }
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

    /// The domains and enums the tables use (`types`), then `pg_dump --schema-only` of the
    /// exported tables, in the export's snapshot.
    static func schemaSQL(_ catalog: TableCatalog, types: String, snapshot: String, url: PostgresConnectionString, env: JobEnvironment,
                          serverVersion: String, database: String) async throws -> [UInt8] {
        let (conninfo, childEnvironment) = url.childProcessArguments()
        // No comments (COMMENT ON text is free prose, and may quote a person), security
        // labels, publications or subscriptions: only what the tables need to load.
        var arguments = ["--schema-only", "--no-owner", "--no-privileges", "--no-comments", "--no-security-labels", "--no-publications",
                         "--no-subscriptions", "--snapshot=\(snapshot)", "--no-password", "--dbname=\(conninfo)"]
        for t in catalog.tables { arguments.append("--table=" + (try PostgresIdentifier.qualified(schema: t.schema, name: t.name))) }
        let pgDump = try await env.pgDump(serverVersionNumber: (PostgresTools.major(versionText: serverVersion) ?? 0) * 10000, database: database)
        let process = try Subprocess(pgDump, arguments: arguments,
                                     environment: ProcessInfo.processInfo.environment.merging(childEnvironment) { $1 }, pipeStdout: true)
        let text = try await BlockingLane.detached { () throws -> [UInt8] in
            var out: [UInt8] = Array(types.utf8)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 1)
            defer { buffer.deallocate() }
            while true {
                let n = try process.readStdout(into: buffer)
                if n == 0 { break }
                out += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            }
            return out
        }
        guard await process.wait() == 0 else { throw JobError.retryable("pg_dump --schema-only failed: \(process.standardError)") }
        return text
    }
}

/// COPY text in, masked COPY text out, compressed, in order. Chunks move through three
/// stages: read (in order: the server's bytes cut at the last line end, the rest carried
/// to the next chunk), mask (whole chunks side by side, one run of its own each: no chunk
/// waits for another's lines), and compress (in order, on a lane of its own), while the
/// caller hashes and writes the chunk before. Up to `depth` chunks are on their way at
/// once, so the server keeps producing while dbq masks and the cores never wait on a
/// chunk's slowest half.
final class MaskingPipe: @unchecked Sendable {
    // @unchecked Sendable: `source`, `carry`, `insideRow` and `sourceEnded` are touched
    // only by reads, each of which awaits the one before it; `compressor`, `rows`,
    // `rawBytes`, `started` and `finished` only by compress steps, each of which awaits
    // the chunk before it; a run's buffer only by the one chunk in flight that owns it
    // (chunk n uses run n % depth, and chunk n + depth starts after chunk n is taken).
    private var source: ByteStream.AsyncIterator
    private let transformer: RowTransformer
    private let runs: [MaskingRun]
    private let compressLane = BlockingLane(label: "dbq.export.compress")
    private let compressor: Compressor
    /// The chunks on their way, oldest first: each yields its compressed bytes, or nil
    /// once the stream has ended.
    private var inflight: [Task<[UInt8]?, any Error>] = []
    private var newestRead: Task<Lines?, any Error>?
    private var chunks = 0
    /// The tail of the last chunk read: a line not yet complete.
    private var carry: [UInt8] = []
    private var sourceEnded = false
    /// A chunk passed through whole ended without a newline.
    private var insideRow = false
    private var started = false
    private var finished = false
    private(set) var rows: Int64 = 0
    private(set) var rawBytes: Int64 = 0

    /// The table, for messages.
    private let table: String

    init(source: ByteStream, transformer: RowTransformer, compressor: Compressor, table: String = "") throws {
        self.table = table
        // One run when a k-anonymity count needs the rows in order; else four per core, at
        // most eight: a chunk whose thread the server's COPY or the writer preempts must
        // not hold the others back (chunks leave in order). Measured on two cores (1 GiB
        // of PII, 3 of 7 columns masked, `dbq bench export`): 3 runs 14.4 s, 5 runs
        // 12.9 s, 8 runs 12.0 s, 12 and 16 runs the same as 8; each run holds two
        // buffers of a chunk (about 6 MiB more at 8 than at 3).
        let depth = transformer.groups != nil ? 1 : min(8, 4 * max(1, ProcessInfo.processInfo.activeProcessorCount))
        self.source = source.makeAsyncIterator()
        self.transformer = transformer
        runs = (0..<depth).map { MaskingRun(transformer: $0 == 0 ? transformer : transformer.forAnotherThread(), lane: BlockingLane(label: "dbq.export.mask.\($0)")) }
        self.compressor = compressor
    }

    deinit {
        for chunk in inflight { chunk.cancel() }
        newestRead?.cancel()
    }

    func stream() -> ByteStream {
        ByteStream { [self] in
            while inflight.count < runs.count { inflight.append(startChunk()) }
            let out = try await inflight.removeFirst().value
            if out == nil {
                for chunk in inflight { chunk.cancel() }
                inflight.removeAll()
            }
            return out
        }
    }

    private func startChunk() -> Task<[UInt8]?, any Error> {
        let previousRead = newestRead
        let read = Task { [self] () async throws -> Lines? in
            _ = try await previousRead?.value
            return try await readLines()
        }
        newestRead = read
        let previous = inflight.last
        let run = runs[chunks % runs.count]
        chunks += 1
        return Task { [self] in
            let lines = try await read.value
            var masked: Masked?
            if let lines {
                masked = try await run.lane.run { () throws -> Masked in try self.mask(lines, run: run) }
            }
            let result = masked
            // In order: the compressor's state, the counts and the end belong to the stream.
            _ = try await previous?.value
            return try await compressLane.run { () throws -> [UInt8]? in try self.compress(result) }
        }
    }

    /// A chunk cut at line ends: `head` (the line the chunk before left open, completed
    /// by this chunk's first bytes) and `chunk[body]`, whole lines both, without copying
    /// the chunk.
    struct Lines: Sendable {
        var head: [UInt8] = []
        var chunk: [UInt8] = []
        var body: Range<Int> = 0..<0
    }

    /// The next chunk of whole lines (every byte, when nothing is masked), or nil at the end.
    private func readLines() async throws -> Lines? {
        if sourceEnded { return nil }
        var iterator = source
        defer { source = iterator }
        guard let chunk = try await iterator.next() else {
            sourceEnded = true
            guard carry.isEmpty else { throw JobError.retryable("the COPY stream ended inside a row") }
            return nil
        }
        if transformer.isIdentity { return Lines(chunk: chunk, body: 0..<chunk.count) }
        let (first, last) = chunk.withUnsafeBytes { raw -> (Int?, Int?) in
            guard let base = raw.baseAddress, let hit = memchr(base, 0x0A, raw.count) else { return (nil, nil) }
            return (UnsafeRawPointer(hit) - base, Self.lastNewline(in: raw))
        }
        guard let first, let last else {
            // A row longer than a chunk: carried whole.
            carry.append(contentsOf: chunk)
            return Lines()
        }
        var lines = Lines(chunk: chunk, body: 0..<(last + 1))
        if !carry.isEmpty {
            lines.head = carry + chunk[...first]
            lines.body = (first + 1)..<(last + 1)
            carry.removeAll(keepingCapacity: true)
        }
        carry.append(contentsOf: chunk[(last + 1)...])
        return lines
    }

    /// One chunk masked by one run into a buffer of the run's: whole lines in, transformed
    /// lines out. The run's two buffers alternate; the one used is free again once the
    /// caller has written its chunk (then refilled in place: no fresh pages per chunk).
    /// A chunk masked: its bytes and rows, or the rows before the one that could not be
    /// masked and why (numbered from the stream's start by the compress step, in order).
    struct Masked: Sendable {
        var bytes: [UInt8]
        var rows: Int64
        var failure: AnonymizationError?
    }

    private func mask(_ lines: Lines, run: MaskingRun) throws -> Masked {
        if transformer.isIdentity { return Masked(bytes: lines.chunk, rows: lines.chunk.withUnsafeBytes { Self.countNewlines($0) }) }
        run.turn ^= 1
        var out = run.buffers[run.turn]
        run.buffers[run.turn] = []
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity((lines.head.count + lines.body.count) * 5 / 4)
        var rows: Int64 = 0
        let transformer = run.transformer
        do throws(AnonymizationError) {
            rows += Int64(try lines.head.withUnsafeBytes { bytes in
                Result { () throws(AnonymizationError) in try transformer.transform(lines: bytes, into: &out) }
            }.get())
            let headRows = rows
            do throws(AnonymizationError) {
                rows += Int64(try lines.chunk.withUnsafeBytes { bytes in
                    Result { () throws(AnonymizationError) in try transformer.transform(lines: UnsafeRawBufferPointer(rebasing: bytes[lines.body]), into: &out) }
                }.get())
            } catch {
                var error = error
                error.row = error.row.map { $0 + Int(headRows) }
                throw error
            }
        } catch {
            run.buffers[run.turn] = out
            return Masked(bytes: [], rows: Int64((error.row ?? 1) - 1), failure: error)
        }
        run.buffers[run.turn] = out
        return Masked(bytes: out, rows: rows)
    }

    /// A masked chunk compressed, in stream order; nil in: the stream's end (its header if
    /// it had no row, the compressor's last bytes), then nil out.
    private func compress(_ masked: Masked?) throws -> [UInt8]? {
        guard let masked else {
            if finished { return nil }
            finished = true
            if transformer.isIdentity && insideRow { throw JobError.retryable("the COPY stream ended inside a row") }
            // An empty table in CSV still has its header.
            let header = started ? [] : transformer.header
            started = true
            return try (header.isEmpty ? [] : compressor.compress(header)) + compressor.finish()
        }
        if let failure = masked.failure {
            let row = failure.row.map { ", row \(rows + Int64($0))" } ?? ""
            throw JobError.permanent("table \(table)\(row), \(failure.message); the export stops so that no value leaves unmasked (choose a rule that fits the column, or fix the value)")
        }
        rows += masked.rows
        if transformer.isIdentity, let last = masked.bytes.last { insideRow = last != 0x0A }
        var bytes = masked.bytes
        if !started {
            started = true
            if !transformer.header.isEmpty { bytes = transformer.header + bytes }
        }
        rawBytes += Int64(bytes.count)
        return try compressor.compress(bytes)
    }
}

/// One transformer, the lane it masks on and its output buffers: a chunk in flight owns one.
final class MaskingRun: @unchecked Sendable {
    // @unchecked Sendable: `buffers` and `turn` are touched only by the chunk that owns
    // the run, on its lane (see MaskingPipe).
    let transformer: RowTransformer
    let lane: BlockingLane
    var buffers: [[UInt8]] = [[], []]
    var turn = 0
    init(transformer: RowTransformer, lane: BlockingLane) {
        self.transformer = transformer
        self.lane = lane
    }
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
}

extension JobRegistry {
    /// Registers `export` and `import`.
    public mutating func registerExportJobs(environment: @escaping JobEnvironment.Provider) {
        register(ExportJob.self, environment: environment)
        register(ImportJob.self, environment: environment)
    }
}

/// The key every masked export in a store was made with, by fingerprint: the first masked
/// export records it (`exports/key-fingerprint`), and a worker whose key is another one is
/// refused before it reads a row, since its masked values would not join with the rest.
public enum ExportKeyRecord {
    public static let key = ExportLayout.root + "/key-fingerprint"

    /// Refuses a key other than the recorded one; true when none is recorded yet (the
    /// export then records its own once its manifest is written: `record`).
    public static func check(_ anonymizationKey: AnonymizationKey, store: any ObjectStore) async throws -> Bool {
        let recorded: String
        do {
            recorded = String(decoding: try await store.getBytes(key, limit: 4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch let error as ObjectStoreError where error.code == .notFound {
            return true
        }
        switch anonymizationKey.matches(fingerprint: recorded) {
        case true?: return false
        case false?:
            throw JobError.permanent("this worker's \(AnonymizationKey.environmentVariable) is not the key the masked exports in \(store.url) were made with (its fingerprint is in \(store.url)/\(key)): values masked with it would not join with theirs. Give every worker the same key, or export to another store. Nothing was exported")
        case nil:
            throw JobError.permanent("\(store.url)/\(key) does not hold a key fingerprint; remove it (the next masked export records its key) or restore it. Nothing was exported")
        }
    }

    public static func record(_ anonymizationKey: AnonymizationKey, store: any ObjectStore) async throws {
        _ = try await store.put(key, bytes: Array((anonymizationKey.fingerprint() + "\n").utf8))
    }
}
