import Anonymization
import Codecs
import DatabaseJobs
import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `import`: an export loaded into a configured database in one transaction: each table
/// streamed with `COPY FROM` into a temporary table, then merged by the mode; sequences
/// moved past the imported values. `dryRun` reports what would change and commits nothing.
public struct ImportJob: SchemaChangeJob {
    public static let kind = "import"

    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// Insert every row; a row whose key exists fails the import (nothing is kept).
        case insert
        /// Insert new rows, update existing ones by primary key.
        case upsert
        /// Insert new rows, leave existing ones.
        case skip
        /// Empty the tables first (in reverse dependency order), then insert.
        case replace
    }

    public struct Payload: Codable, Sendable {
        /// The configured database to load into.
        public var database: String
        public var storage: String?
        /// An export id, job id or prefix, or `latest` (default).
        public var export: String?
        /// Which database's exports `latest` looks at (default: any).
        public var source: String?
        public var tables: [String]?
        public var mode: Mode?
        /// Run the export's `schema.sql` first (for an empty database).
        public var createSchema: Bool?
        public var dryRun: Bool?
        /// Snapshot the target's tables the import loads first (named in the result).
        public var snapshot: Bool?

        public init(database: String, storage: String? = nil, export: String? = nil, source: String? = nil, tables: [String]? = nil,
                    mode: Mode? = nil, createSchema: Bool? = nil, dryRun: Bool? = nil, snapshot: Bool? = nil) {
            self.snapshot = snapshot
            self.database = database
            self.storage = storage
            self.export = export
            self.source = source
            self.tables = tables
            self.mode = mode
            self.createSchema = createSchema
            self.dryRun = dryRun
        }
    }

    public init() {}

    public func run(_ payload: Payload, in env: JobEnvironment, context: JobContext) async throws -> JSONValue? {
        let url = try env.database(payload.database)
        let store = try env.store(payload.storage).store
        let catalog = try await ExportCatalog.load(store)
        if (payload.export ?? "latest") == "latest", payload.source == nil {
            // The newest export of any database is rarely the one meant.
            let databases = Set(catalog.entries.map(\.manifest.database)).sorted()
            if databases.count > 1 {
                throw JobError.permanent("--export latest is ambiguous: this storage holds exports of \(databases.joined(separator: ", ")); say whose with --source DATABASE, or give the export's id. Nothing was imported")
            }
        }
        let entry = try catalog.find(payload.export ?? "latest", database: payload.source)
        let limit = env.objectLimit(payload.storage)
        return try await env.withDatabaseLock(payload.database, for: Self.self, context: context) {
            var snapshot: String?
            if payload.snapshot ?? false, !(payload.dryRun ?? false) {
                snapshot = try await Self.snapshotFirst(entry, payload: payload, url: url, store: store, objectLimit: limit, context: context)
            }
            var result = try await Self.load(entry, payload: payload, url: url, store: store, context: context)
            if case .object(var fields) = result, payload.snapshot ?? false {
                fields["snapshot"] = snapshot.map(JSONValue.string) ?? .null
                result = .object(fields)
            }
            return result
        }
    }

    /// Snapshots the tables of the target that the import will load (those that exist):
    /// the snapshot's id, or nil when none exists yet (an import into an empty database).
    static func snapshotFirst(_ entry: ExportCatalog.Entry, payload: Payload, url: PostgresConnectionString, store: any ObjectStore,
                              objectLimit: Int64, context: JobContext) async throws -> String? {
        let wanted = Set(payload.tables.map { $0.map { $0.contains(".") ? $0 : "public.\($0)" } } ?? entry.manifest.tables.map(\.qualifiedName))
        let existing = try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq import", logger: context.logger) {
            try await SnapshotQueries.shapes($0).keys.filter(wanted.contains).sorted()
        }
        guard !existing.isEmpty else { return nil }
        await context.progress(JobProgress(message: "snapshot of \(existing.count) tables before importing"))
        let manifest = try await TableSnapshot.take(
            SnapshotRequest(database: payload.database, tables: existing, label: "before importing export \(entry.id)"),
            url: url, store: store, objectLimit: objectLimit, codec: .zstd, context: context)
        return manifest.id
    }

    static func load(_ entry: ExportCatalog.Entry, payload: Payload, url: PostgresConnectionString, store: any ObjectStore,
                     context: JobContext) async throws -> JSONValue {
        try await DatabaseScope.withConnection(url, database: payload.database, application: "dbq import", logger: context.logger) { connection in
            try await load(entry, payload: payload, url: url, store: store, context: context, connection: connection)
        }
    }

    private static func load(_ entry: ExportCatalog.Entry, payload: Payload, url: PostgresConnectionString, store: any ObjectStore,
                     context: JobContext, connection: PostgresConnection) async throws -> JSONValue {
        let mode = payload.mode ?? .insert
        let dryRun = payload.dryRun ?? false
        var tables = entry.manifest.tables
        if let names = payload.tables, !names.isEmpty {
            tables = try names.map { name in
                let qualified = name.contains(".") ? name : "public.\(name)"
                guard let t = tables.first(where: { $0.qualifiedName == qualified }) else {
                    throw JobError.permanent("export \(entry.id) has no table '\(name)'; it has \(entry.manifest.tables.map(\.qualifiedName).joined(separator: ", "))")
                }
                return t
            }
            // In the export's order (parents before the tables that reference them), not as
            // typed: a child loaded first fails its foreign key.
            let position = Dictionary(entry.manifest.tables.enumerated().map { ($1.qualifiedName, $0) }, uniquingKeysWith: { a, _ in a })
            var seen = Set<String>()
            tables = tables.filter { seen.insert($0.qualifiedName).inserted }.sorted { position[$0.qualifiedName]! < position[$1.qualifiedName]! }
        }
        _ = try await connection.execute("BEGIN")
        var report: [String: Result.Table] = [:]
        do {
            if payload.createSchema ?? false {
                let ddl = try await store.getBytes(entry.folder + "/" + entry.manifest.schema.name)
                // Checked like every object before a byte of it runs.
                let digest = sha256Hex(ddl)
                guard Int64(ddl.count) == entry.manifest.schema.size, digest == entry.manifest.schema.sha256 else {
                    throw JobError.permanent("export object \(store.url)/\(entry.folder)/\(entry.manifest.schema.name) is corrupt: \(ddl.count) bytes with SHA-256 \(digest.prefix(16))…, the manifest says \(entry.manifest.schema.size) bytes with \(entry.manifest.schema.sha256.prefix(16))…; nothing was imported")
                }
                // pg_dump (15.14 on) brackets its script with psql meta-commands (\restrict,
                // \unrestrict) that the server does not know: they are psql's, not SQL.
                let sql = String(decoding: ddl, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                    .filter { !$0.hasPrefix("\\") }.joined(separator: "\n")
                _ = try await connection.execute(sql)
                // pg_dump's preamble empties the search path for its session: set it back.
                _ = try await connection.execute("SELECT pg_catalog.set_config('search_path', '\"$user\", public', false)")
            }
            var plans: [(ExportManifest.Table, String, [String])] = []
            for table in tables {
                let qualified = try PostgresIdentifier.qualified(schema: table.schema, name: table.name)
                try await checkColumns(table, connection: connection, database: payload.database)
                plans.append((table, qualified, try await primaryKey(table, connection: connection)))
            }
            // Tables that reference each other (a cycle the export followed) cannot be loaded
            // one after the other: their foreign keys are checked at the end instead.
            let deferred = dryRun ? [] : try await deferCycles(Set(tables.map(\.qualifiedName)), connection: connection)
            var deleted: [String: Int] = [:]
            if mode == .replace {
                // DELETE would run the foreign keys' ON DELETE actions on tables the import
                // does not load (CASCADE empties them, SET NULL rewrites them): refused, named.
                let loading = Set(tables.map(\.qualifiedName))
                let outside = try await connection.query("""
                    SELECT n.nspname || '.' || c.relname, con.conname, rn.nspname || '.' || rc.relname,
                           CASE con.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END
                    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
                    WHERE con.contype = 'f' AND con.confdeltype IN ('c', 'n', 'd') AND con.conparentid = 0
                    """).compactMap { r -> String? in
                    guard let from = r[0], let name = r[1], let to = r[2], let action = r[3], loading.contains(to), !loading.contains(from) else { return nil }
                    return "\(from) (foreign key \(name) → \(to) ON DELETE \(action))"
                }
                if !outside.isEmpty {
                    throw JobError.permanent("--mode replace deletes the rows of the tables it loads, and that would change tables it does not: \(outside.joined(separator: ", ")); import those tables too, or use --mode upsert. Nothing was imported")
                }
                for (table, qualified, _) in plans.reversed() {
                    if dryRun {
                        deleted[table.qualifiedName] = try await connection.query("SELECT count(*) FROM \(qualified)").scalar.flatMap { Int($0) } ?? 0
                    } else {
                        deleted[table.qualifiedName] = try await connection.execute("DELETE FROM \(qualified)").affectedRows ?? 0
                    }
                }
            }
            for (index, (table, qualified, key)) in plans.enumerated() {
                let columns = try table.columns.map { try PostgresIdentifier.quoted($0.name) }.joined(separator: ", ")
                let temp = "dbq_import_\(index)"
                _ = try await connection.execute("CREATE TEMP TABLE \(temp) (LIKE \(qualified) INCLUDING DEFAULTS) ON COMMIT DROP")
                let rows = try await decoded(table, entry: entry, codec: entry.manifest.codec, store: store)
                let loaded: Int
                switch entry.manifest.rowFormat ?? .copy {
                case .copy: loaded = try await connection.copyIn("COPY \(temp) (\(columns)) FROM STDIN", from: rows)
                case .csv: loaded = try await connection.copyIn("COPY \(temp) (\(columns)) FROM STDIN (FORMAT csv, HEADER true)", from: rows)
                case .jsonl:
                    let converter = JSONLinesToCopy(source: rows, names: table.columns.map(\.name), table: table.qualifiedName)
                    loaded = try await connection.copyIn("COPY \(temp) (\(columns)) FROM STDIN", from: converter.stream())
                }
                let keyList = try key.map { try PostgresIdentifier.quoted($0) }.joined(separator: ", ")
                let existing = key.isEmpty || mode == .replace ? 0 : try await connection.query(
                    "SELECT count(*) FROM \(temp) s WHERE EXISTS (SELECT 1 FROM \(qualified) t WHERE (\(key.map { "t.\(try PostgresIdentifier.quoted($0))" }.joined(separator: ", "))) = (\(key.map { "s.\(try PostgresIdentifier.quoted($0))" }.joined(separator: ", "))))"
                ).scalar.flatMap { Int($0) } ?? 0
                var line = Result.Table(rows: loaded)
                line.delete = deleted[table.qualifiedName]
                switch mode {
                case .insert, .replace:
                    line.insert = loaded
                    if !dryRun {
                        do {
                            _ = try await connection.execute("INSERT INTO \(qualified) (\(columns)) OVERRIDING SYSTEM VALUE SELECT \(columns) FROM \(temp)")
                        } catch let error as PostgresError where error.sqlState == "23505" {
                            throw JobError.permanent("table \(table.qualifiedName): rows of the export already exist (\(error.message)); use --mode skip, upsert or replace. Nothing was imported")
                        }
                    }
                case .skip:
                    // Without a key, existing rows cannot be told apart: every row would be added again.
                    guard !key.isEmpty || loaded == 0 else {
                        throw JobError.permanent("table \(table.qualifiedName) has no primary key: skip cannot tell which rows exist (it would add every row again); use insert or replace, or leave the table out with --tables. Nothing was imported")
                    }
                    line.insert = loaded - existing
                    line.skip = existing
                    if !dryRun { _ = try await connection.execute("INSERT INTO \(qualified) (\(columns)) OVERRIDING SYSTEM VALUE SELECT \(columns) FROM \(temp) ON CONFLICT DO NOTHING") }
                case .upsert:
                    guard !key.isEmpty || loaded == 0 else {
                        throw JobError.permanent("table \(table.qualifiedName) has no primary key: upsert needs one; use insert or replace, or leave the table out with --tables. Nothing was imported")
                    }
                    line.insert = loaded - existing
                    line.update = existing
                    let updates = try table.columns.filter { !key.contains($0.name) }.map { c -> String in
                        let q = try PostgresIdentifier.quoted(c.name)
                        return "\(q) = EXCLUDED.\(q)"
                    }
                    let action = updates.isEmpty ? "DO NOTHING" : "DO UPDATE SET " + updates.joined(separator: ", ")
                    if !dryRun && !key.isEmpty { _ = try await connection.execute("INSERT INTO \(qualified) (\(columns)) OVERRIDING SYSTEM VALUE SELECT \(columns) FROM \(temp) ON CONFLICT (\(keyList)) \(action)") }
                }
                report[table.qualifiedName] = line
                await context.progress(JobProgress(fraction: Double(index + 1) / Double(plans.count), message: "\(index + 1) of \(plans.count) tables"))
            }
            if !dryRun {
                for (table, qualified, _) in plans { try await moveSequences(table, qualified: qualified, connection: connection) }
            }
            try await restore(deferred, connection: connection)
            _ = try await connection.execute(dryRun ? "ROLLBACK" : "COMMIT")
        } catch {
            _ = try? await connection.execute("ROLLBACK")
            throw error
        }
        return try Result(export: entry.id, database: payload.database, mode: mode.rawValue, dryRun: dryRun, tables: report).json
    }

    /// A foreign key made deferred for the load, and what it was.
    struct DeferredKey {
        var table: String
        var name: String
        var qualifiedName: String
        var deferrable: Bool
    }

    /// Makes every foreign key on a cycle among `loading` (A references B, B references A,
    /// however long the chain) `DEFERRABLE INITIALLY DEFERRED`, inside the import's
    /// transaction: its rows are checked when `restore` runs, after every table is loaded.
    /// Keys already initially deferred are left as they are.
    static func deferCycles(_ loading: Set<String>, connection: PostgresConnection) async throws -> [DeferredKey] {
        let rows = try await connection.query("""
            SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname,
                   rn.nspname || '.' || rc.relname, quote_ident(con.conname), quote_ident(n.nspname) || '.' || quote_ident(con.conname),
                   con.condeferrable, con.condeferred
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE con.contype = 'f' AND con.conparentid = 0 AND con.conrelid <> con.confrelid
            """)
        struct Key { var quotedTable, from, to, name, qualifiedName: String; var deferrable, deferred: Bool }
        let keys = rows.compactMap { r -> Key? in
            guard let q = r[0], let from = r[1], let to = r[2], let name = r[3], let qn = r[4], loading.contains(from), loading.contains(to) else { return nil }
            return Key(quotedTable: q, from: from, to: to, name: name, qualifiedName: qn, deferrable: r[5] == "t", deferred: r[6] == "t")
        }
        let edges = Dictionary(grouping: keys, by: \.from).mapValues { Set($0.map(\.to)) }
        func reaches(_ start: String, _ goal: String) -> Bool {
            var seen: Set<String> = [start], stack = [start]
            while let next = stack.popLast() {
                if next == goal { return true }
                for to in edges[next] ?? [] where seen.insert(to).inserted { stack.append(to) }
            }
            return false
        }
        var deferred: [DeferredKey] = []
        for key in keys where !key.deferred && reaches(key.to, key.from) {
            _ = try await connection.execute("ALTER TABLE \(key.quotedTable) ALTER CONSTRAINT \(key.name) DEFERRABLE INITIALLY DEFERRED")
            deferred.append(DeferredKey(table: key.quotedTable, name: key.name, qualifiedName: key.qualifiedName, deferrable: key.deferrable))
        }
        return deferred
    }

    /// Checks the deferred keys' rows now (a violation fails the import, rolled back), then
    /// puts each key back as it was.
    static func restore(_ keys: [DeferredKey], connection: PostgresConnection) async throws {
        guard !keys.isEmpty else { return }
        do {
            _ = try await connection.execute("SET CONSTRAINTS \(keys.map(\.qualifiedName).joined(separator: ", ")) IMMEDIATE")
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw JobError.permanent("the imported rows of tables that reference each other break a foreign key (\(error.message)); was the export taken with --where and without --follow-references? Nothing was imported")
        }
        for key in keys {
            _ = try await connection.execute("ALTER TABLE \(key.table) ALTER CONSTRAINT \(key.name) \(key.deferrable ? "DEFERRABLE INITIALLY IMMEDIATE" : "NOT DEFERRABLE")")
        }
    }

    /// What an import loaded (or, dry, would load), per table.
    public struct Result: JobResult {
        public struct Table: Encodable, Sendable {
            public var rows: Int
            public var insert: Int?
            public var skip: Int?
            public var update: Int?
            /// Replace: the rows deleted first (in a dry run, the rows it would delete).
            public var delete: Int?
        }
        public var export: String
        public var database: String
        public var mode: String
        public var dryRun: Bool
        public var tables: [String: Table]
    }

    /// The target table must have the export's columns, by name and type, and no other
    /// column without a default.
    static func checkColumns(_ table: ExportManifest.Table, connection: PostgresConnection, database: String) async throws {
        let rows = try await connection.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull AND a.atthasdef = false
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """, [PostgresParameter(table.schema), PostgresParameter(table.name)])
        guard !rows.isEmpty else {
            throw JobError.permanent("database '\(database)' has no table \(table.qualifiedName); create it first, or import with --create-schema")
        }
        var differences: [String] = []
        let target = Dictionary(rows.compactMap { r in r[0].map { ($0, (r[1] ?? "", r[2] == "t")) } }, uniquingKeysWith: { a, _ in a })
        for column in table.columns {
            guard let (type, _) = target[column.name] else { differences.append("column \(column.name) is missing"); continue }
            if type != column.type { differences.append("column \(column.name) is \(type), the export's is \(column.type)") }
        }
        for (name, (_, required)) in target.sorted(by: { $0.key < $1.key }) where required && !table.columns.contains(where: { $0.name == name }) {
            differences.append("column \(name) is NOT NULL without a default and not in the export")
        }
        if !differences.isEmpty {
            throw JobError.permanent("table \(table.qualifiedName) in database '\(database)' differs from the export: \(differences.joined(separator: "; ")); nothing was imported")
        }
    }

    static func primaryKey(_ table: ExportManifest.Table, connection: PostgresConnection) async throws -> [String] {
        try await connection.query("""
            SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
            WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2 ORDER BY k.ord
            """, [PostgresParameter(table.schema), PostgresParameter(table.name)]).compactMap { $0[0] }
    }

    /// Every sequence a column of the table owns is moved past the column's largest value.
    static func moveSequences(_ table: ExportManifest.Table, qualified: String, connection: PostgresConnection) async throws {
        for column in table.columns {
            guard let sequence = try await connection.query("SELECT pg_get_serial_sequence($1, $2)",
                                                            [PostgresParameter(qualified), PostgresParameter(column.name)]).scalar else { continue }
            let q = try PostgresIdentifier.quoted(column.name)
            _ = try await connection.query(
                "SELECT setval($1::regclass, greatest((SELECT max(\(q)) FROM \(qualified)), (SELECT last_value FROM \(sequence))))",
                [PostgresParameter(sequence)])
        }
    }

    /// A table's objects, in order, checked against the manifest and decompressed.
    static func decoded(_ table: ExportManifest.Table, entry: ExportCatalog.Entry, codec: Codec, store: any ObjectStore) async throws -> ByteStream {
        try ArtefactReader(folder: entry.folder, objects: table.objects, store: store, codec: codec,
                           family: "export", consequence: "nothing was imported").stream()
    }
}

/// JSON Lines (as an export writes them) in, COPY text out, line by line: the import loads
/// every format through the same `COPY FROM`.
final class JSONLinesToCopy: @unchecked Sendable {
    // @unchecked Sendable: pulled by one COPY FROM, one chunk at a time.
    private var source: ByteStream.AsyncIterator
    private let names: [String]
    private let table: String
    private var carry: [UInt8] = []
    private var line = 0

    init(source: ByteStream, names: [String], table: String) {
        self.source = source.makeAsyncIterator()
        self.names = names
        self.table = table
    }

    func stream() -> ByteStream {
        ByteStream { [self] in
            while true {
                var iterator = source
                let chunk = try await iterator.next()
                source = iterator
                guard let chunk else {
                    guard carry.allSatisfy({ $0 == 0x20 || $0 == 0x0A }) else { throw JobError.permanent("\(table): the JSON lines end inside a line") }
                    return nil
                }
                let out = try convert(chunk)
                if !out.isEmpty { return out }
            }
        }
    }

    private func convert(_ chunk: [UInt8]) throws -> [UInt8] {
        var input = carry
        input += chunk
        var out: [UInt8] = []
        var start = input.startIndex
        while let newline = input[start...].firstIndex(of: 0x0A) {
            line += 1
            if newline > start {
                do {
                    CopyText.encode(try JSONLine.decode(input[start..<newline], names: names), into: &out)
                } catch {
                    throw JobError.permanent("\(table), line \(line): \(error); nothing was imported")
                }
            }
            start = newline + 1
        }
        carry = Array(input[start...])
        return out
    }
}
