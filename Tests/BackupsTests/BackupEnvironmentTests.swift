import Foundation
@testable import Backups
@testable import DatabaseJobs
import DBQConfig
import ObjectStorage
import Queue
import Testing

@Suite("Backup environment")
struct JobEnvironmentTests {
    @Test("a storage that cannot be opened fails the job for good, naming the storage, without retries")
    func unopenableStorageIsPermanent() async throws {
        let broken = StorageSettings(url: try StorageURL("s3://bucket/prefix"), endpoint: "ftp://not-s3", region: "us-east-1",
                                     addressing: .path, accessKeyID: "AKIAEXAMPLE", secretAccessKey: "secret", partSizeMiB: 5)
        let env = try Fixtures.environment(databases: ["main": "postgresql://u@127.0.0.1:1/main"], storage: broken)
        let error = await #expect(throws: JobError.self) {
            _ = try await BackupJob().run(.init(database: "main", storage: "archive"), in: env, context: Fixtures.context("backup"))
        }
        #expect(error?.isRetryable == false)
        #expect(error?.message.hasPrefix("storage 'archive': ") == true)
        #expect(error?.message.contains("ftp://not-s3") == true)
    }
}

@Suite("pg_dump and pg_restore chosen by version")
struct PostgresToolsTests {
    @Test("the oldest version at least the server's; none when all are older")
    func choose() {
        let found = [PostgresTools.Candidate(directory: "/a/15", major: 15), .init(directory: "/a/18", major: 18), .init(directory: "/a/17", major: 17)]
        #expect(PostgresTools.choose(atLeast: 15, among: found)?.directory == "/a/15")
        #expect(PostgresTools.choose(atLeast: 16, among: found)?.directory == "/a/17")
        #expect(PostgresTools.choose(atLeast: 18, among: found)?.directory == "/a/18")
        #expect(PostgresTools.choose(atLeast: 19, among: found) == nil)
        #expect(PostgresTools.major(versionNumber: 180006) == 18)
        #expect(PostgresTools.major(versionNumber: 150014) == 15)
        #expect(PostgresTools.major(versionText: "15.14 (Debian 15.14-0+deb12u1)") == 15)
        #expect(PostgresTools.major(versionText: "pg_dump (PostgreSQL) 18.6") == 18)
        #expect(PostgresTools.major(versionText: "18.6") == 18)
    }

    @Test("on this host: the server's own version is found; a newer server than any pg_dump here is one clear, permanent error naming what was found")
    func discovery() async throws {
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? ""]
        let tool = try await PostgresTools.tool("pg_dump", atLeast: 15, for: "database 'main' (PostgreSQL 15)", environment: environment)
        #expect(tool.hasSuffix("/pg_dump"))
        do {
            _ = try await PostgresTools.tool("pg_dump", atLeast: 99, for: "database 'main' (PostgreSQL 99)", environment: environment)
            Issue.record("a pg_dump 99 was found")
        } catch let error as JobError {
            #expect(error.isRetryable == false)
            #expect(error.message.contains("needs pg_dump 99 or newer") && error.message.contains("found: 15 in /usr/lib/postgresql/15/bin")
                    && error.message.contains("DBQ_PG_BIN_DIRS"), "\(error.message)")
        }
    }
}
