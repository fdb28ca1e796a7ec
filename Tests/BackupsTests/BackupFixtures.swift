import Backups
@testable import DatabaseJobs
import DBQConfig
import DBQSupport
import DBQTestSupport
import Foundation
import JobTestSupport
import Logging
import ObjectStorage
import PostgresClient
import Queue

/// A source database with awkward data, stores on both backends, and a job context for
/// running the backup jobs directly (no worker in between).
enum Fixtures {
    static let logger = Logger(label: "dbq.test.backups")

    static var serverURL: PostgresConnectionString { JobFixtures.server }

    static func url(_ database: String) -> PostgresConnectionString {
        try! PostgresConnectionString(serverURL.replacingDatabase(database))
    }

    static func freshName(_ label: String) -> String {
        "dbqt_\(label)_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
    }

    static func admin() async throws -> PostgresConnection {
        try await PostgresConnection.connect(serverURL.raw, logger: logger)
    }

    static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// A database with several schemas, odd identifiers, NULLs, unicode, random bytea and
    /// `rows` rows in the main table.
    static func makeSource(rows: Int = 20_000, randomMiB: Int = 1) async throws -> String {
        let name = freshName("src")
        let admin = try await admin()
        _ = try await admin.execute("CREATE DATABASE \(quote(name))")
        await admin.close()
        let db = try await PostgresConnection.connect(url(name).raw, logger: logger)
        _ = try await db.execute(#"""
            CREATE SCHEMA "Odd Schema";
            CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, balance numeric(12,2), note text, created timestamptz);
            INSERT INTO accounts SELECT g, 'owner ' || g, (g % 1000) * 1.25,
                CASE WHEN g % 7 = 0 THEN NULL ELSE 'naïve café ☕ ' || md5(g::text) END,
                '2026-01-01'::timestamptz + g * interval '1 minute'
              FROM generate_series(1, \#(rows)) g;
            CREATE TABLE "Odd Schema"."Weird ""Name""" (k text PRIMARY KEY, v jsonb);
            INSERT INTO "Odd Schema"."Weird ""Name""" SELECT 'key' || g, jsonb_build_object('g', g, 'tags', ARRAY['a', 'b'])
              FROM generate_series(1, 500) g;
            CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
            INSERT INTO blobs SELECT g, decode(string_agg(lpad(to_hex((random() * 4294967295)::bigint), 8, '0'), ''), 'hex')
              FROM generate_series(1, \#(randomMiB * 16)) g, generate_series(1, 16384) h GROUP BY g;
            CREATE TABLE empty_table (id int);
            CREATE INDEX accounts_owner ON accounts (owner);
            CREATE VIEW rich AS SELECT * FROM accounts WHERE balance > 900;
            """#)
        await db.close()
        return name
    }

    /// Per table: row count and an md5 over the rows in order, for equality of contents.
    static func checksums(_ database: String) async throws -> [String: String] {
        let db = try await PostgresConnection.connect(url(database).raw, logger: logger)
        var out: [String: String] = [:]
        let tables = try await db.query("""
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
            """)
        for row in tables {
            let qualified = "\(quote(row[0]!)).\(quote(row[1]!))"
            let sum = try await db.query("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM \(qualified) t").scalar
            out["\(row[0]!).\(row[1]!)"] = sum
        }
        await db.close()
        return out
    }

    static func drop(_ database: String) async {
        guard let admin = try? await admin() else { return }
        _ = try? await admin.execute("DROP DATABASE IF EXISTS \(quote(database)) WITH (FORCE)")
        await admin.close()
    }

    static func databaseExists(_ database: String) async throws -> Bool {
        let admin = try await admin()
        defer { Task { await admin.close() } }
        return try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [PostgresParameter(database)]).count == 1
    }

    enum StoreKind: String, CaseIterable, Sendable { case local, s3 }

    /// A storage setting for a fresh place in the store of that kind.
    static func storage(_ kind: StoreKind, partSizeMiB: Int = 5, endpoint: String? = nil) throws -> StorageSettings {
        switch kind {
        case .local:
            return StorageSettings(url: try StorageURL("file://" + TestServices.temporaryDirectory("dbq-backups")), endpoint: nil,
                                   region: "us-east-1", addressing: nil, accessKeyID: nil, secretAccessKey: nil, partSizeMiB: partSizeMiB)
        case .s3:
            return StorageSettings(url: try StorageURL("s3://\(TestServices.s3Bucket)/backup-tests/\(UUID().uuidString)"),
                                   endpoint: endpoint ?? TestServices.s3Endpoint, region: "us-east-1", addressing: .path,
                                   accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey, partSizeMiB: partSizeMiB)
        }
    }

    static func environment(databases: [String: String], storage: StorageSettings, locks: any ResourceLocks = MemoryLocks()) throws -> JobEnvironment {
        try JobFixtures.environment(databases: databases, storage: storage, locks: locks, lockWait: .seconds(2), logger: logger)
    }

    static func context(_ kind: String, id: String = JobID.make(), attempt: Int = 1, token: Int64 = 1,
                        confirmLease: @escaping @Sendable () async throws -> Void = {}) -> JobContext {
        JobFixtures.context(kind, id: id, attempt: attempt, token: token, logger: logger, confirmLease: confirmLease)
    }

    static func run<J: DatabaseJob>(_ job: J, in env: JobEnvironment, _ payload: J.Payload, context: JobContext? = nil) async throws -> JSONValue? {
        try await job.run(payload, in: env, context: context ?? Self.context(J.kind))
    }
}
