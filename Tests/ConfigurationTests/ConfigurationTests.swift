import DBQConfig
import Foundation
import ObjectStorage
import Testing

@Suite("dbq.yaml and the environment")
struct ConfigurationTests {
    let full = """
        redis: redis://:redispw@127.0.0.1:6379/2
        databases:
          main: postgresql://backup:pgsecret@db.internal:5432/main
          reports: host=reports.internal dbname=reports user=ro
        storages:
          archive: {url: "s3://backups/prod", endpoint: "https://s3.eu-west-1.amazonaws.com", region: eu-west-1,
                    access_key_id: AKIAEXAMPLE, secret_access_key: s3secret, part_size_mib: 8}
          local: file:///var/backups/dbq
        worker: {queues: "critical:3,default:1", concurrency: 4}
        schedule: /etc/dbq/schedule.yaml
        """

    @Test("a full file")
    func fullFile() throws {
        let c = try DBQConfiguration.parse(full, file: "dbq.yaml", environment: [:])
        #expect(c.redis?.database == 2)
        #expect(c.databases["main"]?.host == "db.internal")
        #expect(c.databases["reports"]?.database == "reports")
        #expect(c.storages["archive"]?.url == .s3(bucket: "backups", prefix: "prod"))
        #expect(c.storages["archive"]?.partSizeMiB == 8)
        #expect(c.storages["local"]?.url == .file(path: "/var/backups/dbq"))
        #expect(c.workerQueues == "critical:3,default:1" && c.workerConcurrency == 4)
        #expect(c.schedule == "/etc/dbq/schedule.yaml")
        #expect(c.defaultStorageName() == "archive")
    }

    @Test("the environment overrides the file, and can stand alone")
    func environment() throws {
        let c = try DBQConfiguration.parse(full, file: "dbq.yaml", environment: [
            "DBQ_REDIS_URL": "redis://other:6380", "DBQ_DATABASE_URL_MAIN": "postgresql://u@elsewhere/main",
            "DBQ_DATABASE_URL_NEW_DB": "postgresql://u@new/db", "DBQ_STORAGE_URL_LOCAL": "file:///srv/dbq",
            "DBQ_WORKER_CONCURRENCY": "16", "DBQ_SCHEDULE": "s.yaml",
        ])
        #expect(c.redis?.host == "other" && c.redis?.port == 6380)
        #expect(c.databases["main"]?.host == "elsewhere")
        #expect(c.databases["new_db"]?.host == "new")
        #expect(c.storages["local"]?.url == .file(path: "/srv/dbq"))
        #expect(c.workerConcurrency == 16 && c.schedule == "s.yaml")
        let bare = try DBQConfiguration.parse("", file: nil, environment: ["DBQ_REDIS_URL": "redis://h:1"])
        #expect(bare.redis?.host == "h" && bare.storages.isEmpty && bare.defaultStorageName() == nil)
    }

    @Test("every problem is named with its path")
    func problems() {
        let text = """
            redis: "http://nope"
            databases:
              main: "postgresql://u:pw@host:notaport/db"
              "bad name": postgresql://h/db
            storages:
              archive: {url: "s3://", region: x, colour: blue}
              backup: {url: "file:///b", addressing: sideways}
              creds: {url: "s3://b/p", access_key_id: AK}
            worker: {concurrency: 0, extra: 1}
            surprise: true
            """
        do {
            _ = try DBQConfiguration.parse(text, file: "bad.yaml", environment: [:])
            Issue.record("accepted")
        } catch {
            let d = error.description
            for fragment in ["redis: invalid Redis URL: scheme 'http'", "databases.main: invalid PostgreSQL connection string",
                             "databases.bad name: the name may hold", "storages.archive.colour: unknown key",
                             "storages.archive.url: 's3://' names no bucket", "storages.backup.addressing: 'sideways'",
                             "storages.creds: give both access_key_id and secret_access_key", "worker.extra: unknown key",
                             "worker.concurrency: must be from 1 to 10000", "surprise: unknown key"] {
                #expect(d.contains(fragment), "missing: \(fragment)\n\(d)")
            }
            #expect(!d.contains("pw@"), "a password leaked: \(d)")
        }
    }

    @Test("show masks every secret")
    func redacted() throws {
        let shown = try DBQConfiguration.parse(full, file: "dbq.yaml", environment: [:]).redactedYAML
        for secret in ["redispw", "pgsecret", "s3secret"] { #expect(!shown.contains(secret), "\(secret) shown:\n\(shown)") }
        #expect(shown.contains("redis://:***@127.0.0.1:6379/2"))
        #expect(shown.contains("postgresql://backup:***@db.internal:5432/main"))
        #expect(shown.contains("secret_access_key: ***"))
    }

    @Test("a named file that does not exist is an error; no file at all is fine")
    func files() {
        #expect(throws: ConfigurationError.self) { try DBQConfiguration.load(path: "/nonexistent/dbq.yaml", environment: [:]) }
        #expect(throws: ConfigurationError.self) { try DBQConfiguration.parse("- a\n", file: "f", environment: [:]) }
    }
}

@Suite("dbq.yaml: maintenance and health thresholds per database")
struct ThresholdSectionTests {
    @Test("numbers per database are read; a non-number and an unknown database are named")
    func sections() throws {
        let ok = try DBQConfiguration.parse("""
            databases: {main: "postgresql://x@h/main"}
            maintenance: {main: {deadRatio: 0.2, deadMinimum: 5000}}
            health: {main: {replicationLagWarning: 30}}
            """, file: "dbq.yaml", environment: [:])
        #expect(ok.maintenance["main"] == ["deadRatio": 0.2, "deadMinimum": 5000])
        #expect(ok.health["main"] == ["replicationLagWarning": 30])
        do {
            _ = try DBQConfiguration.parse("""
                databases: {main: "postgresql://x@h/main"}
                maintenance: {other: {deadRatio: 0.2}, main: {deadRatio: high}}
                """, file: "dbq.yaml", environment: [:])
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("maintenance.other: no database 'other'"))
            #expect("\(error)".contains("maintenance.main.deadRatio: must be a number"))
        }
    }
}
