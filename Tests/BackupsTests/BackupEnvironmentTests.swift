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
