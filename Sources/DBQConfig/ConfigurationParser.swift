import DBQSupport
import Foundation
import ObjectStorage
import PostgresClient
import RedisClient

/// Reads `dbq.yaml`'s top-level mapping section by section, with the environment's
/// overrides, collecting every problem with its path (`storages.archive.endpoint: …`)
/// instead of stopping at the first.
struct ConfigurationParser {
    let root: [String: Any]
    let environment: [String: String]
    var problems: [String] = []

    init(root: [String: Any], environment: [String: String]) {
        self.root = root
        self.environment = environment
    }

    func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
    func envName(_ name: String) -> String { name.uppercased().replacingOccurrences(of: "-", with: "_") }

    /// Keys of the top level that dbq does not know.
    mutating func unknownTopKeys() {
        for key in root.keys.sorted() where !DBQConfiguration.topKeys.contains(key) {
            problems.append("\(key): unknown key (expected one of: \(DBQConfiguration.topKeys.sorted().joined(separator: ", ")))")
        }
    }

    /// `redis:`, or `DBQ_REDIS_URL`.
    mutating func redis() -> RedisConfiguration? {
        var redis: RedisConfiguration?
        if let url = env("DBQ_REDIS_URL") ?? (root["redis"] as? String) {
            do { redis = try RedisConfiguration(url: url) } catch { problems.append("redis: \(error)") }
        } else if root["redis"] != nil {
            problems.append("redis: must be a URL string (redis://[user:password@]host:port[/db])")
        }
        return redis
    }

    /// `databases:`, and `DBQ_DATABASE_URL_<NAME>` for each.
    mutating func databases() -> [String: PostgresConnectionString] {
        var databases: [String: PostgresConnectionString] = [:]
        var rawDatabases: [String: String] = [:]
        if let raw = root["databases"] {
            if let mapping = raw as? [String: Any] {
                for (name, value) in mapping {
                    guard let url = value as? String else {
                        problems.append("databases.\(name): must be a libpq URL string")
                        continue
                    }
                    rawDatabases[name] = url
                }
            } else {
                problems.append("databases: must be a mapping of names to libpq URLs")
            }
        }
        for (key, value) in environment where key.hasPrefix("DBQ_DATABASE_URL_") && !value.isEmpty {
            let suffix = String(key.dropFirst("DBQ_DATABASE_URL_".count))
            let name = rawDatabases.keys.first { envName($0) == suffix } ?? suffix.lowercased()
            rawDatabases[name] = value
        }
        for (name, url) in rawDatabases.sorted(by: { $0.key < $1.key }) {
            if !DBQConfiguration.isName(name) { problems.append("databases.\(name): the name may hold letters, digits, '-' and '_' only") }
            do { databases[name] = try PostgresConnectionString(url) } catch { problems.append("databases.\(name): \(error)") }
        }
        return databases
    }

    /// `storages:`, and `DBQ_STORAGE_URL_<NAME>` for each.
    mutating func storages() -> [String: StorageSettings] {
        var storages: [String: StorageSettings] = [:]
        var rawStorages: [String: [String: Any]] = [:]
        if let raw = root["storages"] {
            if let mapping = raw as? [String: Any] {
                for (name, value) in mapping {
                    if let url = value as? String { rawStorages[name] = ["url": url] } else if let fields = value as? [String: Any] {
                        rawStorages[name] = fields
                    } else {
                        problems.append("storages.\(name): must be a URL or a mapping with 'url'")
                    }
                }
            } else {
                problems.append("storages: must be a mapping of names to storages")
            }
        }
        for (key, value) in environment where key.hasPrefix("DBQ_STORAGE_URL_") && !value.isEmpty {
            let suffix = String(key.dropFirst("DBQ_STORAGE_URL_".count))
            let name = rawStorages.keys.first { envName($0) == suffix } ?? suffix.lowercased()
            rawStorages[name, default: [:]]["url"] = value
        }
        for (name, fields) in rawStorages.sorted(by: { $0.key < $1.key }) {
            let path = "storages.\(name)"
            if !DBQConfiguration.isName(name) { problems.append("\(path): the name may hold letters, digits, '-' and '_' only") }
            for key in fields.keys.sorted() where !DBQConfiguration.storageKeys.contains(key) {
                problems.append("\(path).\(key): unknown key (expected one of: \(DBQConfiguration.storageKeys.sorted().joined(separator: ", ")))")
            }
            guard let urlText = fields["url"] as? String else {
                problems.append("\(path).url: is missing (s3://bucket/prefix or file:///path)")
                continue
            }
            let url: StorageURL
            do { url = try StorageURL(urlText) } catch {
                problems.append("\(path).url: \(error)")
                continue
            }
            var addressing: S3Configuration.Addressing?
            if let raw = fields["addressing"] {
                addressing = (raw as? String).flatMap(S3Configuration.Addressing.init(rawValue:))
                if addressing == nil { problems.append("\(path).addressing: '\(raw)' is not path or virtual") }
            }
            let endpoint = fields["endpoint"] as? String
            if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
                problems.append("\(path).endpoint: '\(Redaction.url(endpoint))' must start with http:// or https://")
            }
            let partSize = (fields["part_size_mib"] as? Int) ?? (S3Configuration.defaultPartSize >> 20)
            if partSize < 5 || partSize > 5120 { problems.append("\(path).part_size_mib: must be from 5 to 5120") }
            let partsPerObject = (fields["parts_per_object"] as? Int) ?? StorageSettings.defaultPartsPerObject
            if partsPerObject < 1 || partsPerObject > StorageSettings.defaultPartsPerObject {
                problems.append("\(path).parts_per_object: must be from 1 to \(StorageSettings.defaultPartsPerObject) (past that, parts would grow)")
            }
            let keyID = fields["access_key_id"] as? String, secret = fields["secret_access_key"] as? String
            if (keyID == nil) != (secret == nil) {
                problems.append("\(path): give both access_key_id and secret_access_key, or neither (then AWS_* from the environment)")
            }
            var encryption: StorageSettings.Encryption?
            if let raw = fields["encryption"] {
                if let map = raw as? [String: Any], let keyEnv = map["key_env"] as? String, !keyEnv.isEmpty {
                    for key in map.keys.sorted() where !["key_env", "old_keys_env"].contains(key) {
                        problems.append("\(path).encryption.\(key): unknown key (expected key_env, old_keys_env)")
                    }
                    encryption = StorageSettings.Encryption(keyEnv: keyEnv, oldKeysEnv: map["old_keys_env"] as? String)
                } else {
                    problems.append("\(path).encryption: expected {key_env: NAME} (the environment variable holding the key), with old_keys_env: NAME for decrypt-only keys")
                }
            }
            storages[name] = StorageSettings(url: url, endpoint: endpoint, region: (fields["region"] as? String) ?? "us-east-1",
                                             addressing: addressing, accessKeyID: keyID, secretAccessKey: secret, partSizeMiB: partSize,
                                             partsPerObject: partsPerObject)
            storages[name]?.encryption = encryption
            if let raw = fields["sse"] {
                let mode = "\(raw)"
                if mode == "AES256" || mode == "aws:kms" {
                    guard case .s3 = url else {
                        problems.append("\(path).sse: server-side encryption is S3's; this storage is \(urlText)")
                        continue
                    }
                    storages[name]?.serverSideEncryption = .init(mode: mode, kmsKeyID: fields["sse_kms_key_id"] as? String)
                } else {
                    problems.append("\(path).sse: '\(mode)' is not AES256 or aws:kms")
                }
            } else if fields["sse_kms_key_id"] != nil {
                problems.append("\(path).sse_kms_key_id: only with sse: aws:kms")
            }
        }
        return storages
    }

    /// `worker:` and `schedule:`, and their environment variables.
    mutating func worker() -> (queues: String, concurrency: Int, schedule: String) {
        var queues = "default"
        var concurrency = 8
        if let raw = root["worker"] {
            if let fields = raw as? [String: Any] {
                for key in fields.keys.sorted() where !DBQConfiguration.workerKeys.contains(key) {
                    problems.append("worker.\(key): unknown key (expected queues or concurrency)")
                }
                if let q = fields["queues"] { if let q = q as? String { queues = q } else { problems.append("worker.queues: must be a string like critical:3,default:1") } }
                if let c = fields["concurrency"] { if let c = c as? Int { concurrency = c } else { problems.append("worker.concurrency: must be a number") } }
            } else {
                problems.append("worker: must be a mapping with queues and concurrency")
            }
        }
        if let q = env("DBQ_WORKER_QUEUES") { queues = q }
        if let c = env("DBQ_WORKER_CONCURRENCY") {
            if let n = Int(c) { concurrency = n } else { problems.append("DBQ_WORKER_CONCURRENCY: '\(c)' is not a number") }
        }
        if !(1...10_000).contains(concurrency) { problems.append("worker.concurrency: must be from 1 to 10000") }
        var schedule = (root["schedule"] as? String) ?? "jobs/schedule.yaml"
        if root["schedule"] != nil && !(root["schedule"] is String) { problems.append("schedule: must be a file path") }
        if let s = env("DBQ_SCHEDULE") { schedule = s }
        return (queues, concurrency, schedule)
    }

    /// `migrations:`: a folder per configured database.
    mutating func migrations(databases: [String: PostgresConnectionString]) -> [String: String] {
        var migrations: [String: String] = [:]
        if let raw = root["migrations"] {
            if let fields = raw as? [String: Any] {
                for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                    guard let folder = value as? String else { problems.append("migrations.\(name): must be a folder path"); continue }
                    if !databases.isEmpty && databases[name] == nil {
                        problems.append("migrations.\(name): no database '\(name)' under databases: (configured: \(databases.keys.sorted().joined(separator: ", ")))")
                    }
                    migrations[name] = folder
                }
            } else {
                problems.append("migrations: must be a mapping of database names to folders (migrations: {main: jobs/migrations})")
            }
        }
        return migrations
    }

    /// `partitions:`: the range-partitioned tables of each database.
    mutating func partitions(databases: [String: PostgresConnectionString]) -> [String: [PartitionSetting]] {
        var partitions: [String: [PartitionSetting]] = [:]
        if let raw = root["partitions"] {
            if let fields = raw as? [String: Any] {
                for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                    if !databases.isEmpty && databases[name] == nil {
                        problems.append("partitions.\(name): no database '\(name)' under databases: (configured: \(databases.keys.sorted().joined(separator: ", ")))")
                    }
                    guard let list = value as? [Any] else { problems.append("partitions.\(name): must be a list of tables ({table: public.events, interval: daily, premake: 7, retention: 90d})"); continue }
                    for (index, item) in list.enumerated() {
                        let path = "partitions.\(name)[\(index)]"
                        guard let entry = item as? [String: Any] else { problems.append("\(path): must be a mapping with table and interval"); continue }
                        for key in entry.keys.sorted() where !DBQConfiguration.partitionKeys.contains(key) {
                            problems.append("\(path).\(key): unknown key (expected one of: \(DBQConfiguration.partitionKeys.sorted().joined(separator: ", ")))")
                        }
                        guard let table = entry["table"] as? String else { problems.append("\(path).table: required (schema.table)"); continue }
                        let interval = (entry["interval"] as? String) ?? ""
                        if !PartitionSetting.intervals.contains(interval) {
                            problems.append("\(path).interval: '\(interval)' is not one of \(PartitionSetting.intervals.joined(separator: ", "))")
                        }
                        let premake = (entry["premake"] as? Int) ?? 4
                        if !(0...1000).contains(premake) { problems.append("\(path).premake: must be from 0 to 1000") }
                        var retention: Double?
                        if let text = entry["retention"] {
                            retention = (text as? String).flatMap(PartitionSetting.duration)
                            if retention == nil { problems.append("\(path).retention: '\(text)' is not a duration like 90d, 12w or 36h") }
                        }
                        let action = (entry["retention_action"] as? String) ?? "detach"
                        if !["detach", "drop"].contains(action) { problems.append("\(path).retention_action: must be detach or drop, not '\(action)'") }
                        partitions[name, default: []].append(PartitionSetting(table: table, interval: interval, premake: premake, retentionSeconds: retention, retentionAction: action))
                    }
                }
            } else {
                problems.append("partitions: must be a mapping of database names to lists of tables")
            }
        }
        return partitions
    }

    /// `maintenance:` and `health:`: thresholds per database.
    mutating func thresholds(databases: [String: PostgresConnectionString]) -> [String: [String: [String: Double]]] {
        var thresholds: [String: [String: [String: Double]]] = [:]
        for section in ["maintenance", "health"] {
            guard let raw = root[section] else { continue }
            guard let fields = raw as? [String: Any] else { problems.append("\(section): must be a mapping of database names to thresholds"); continue }
            for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
                if !databases.isEmpty && databases[name] == nil {
                    problems.append("\(section).\(name): no database '\(name)' under databases: (configured: \(databases.keys.sorted().joined(separator: ", ")))")
                }
                guard let entries = value as? [String: Any] else { problems.append("\(section).\(name): must be a mapping of thresholds to numbers"); continue }
                for (key, number) in entries.sorted(by: { $0.key < $1.key }) {
                    if let n = number as? Double { thresholds[section, default: [:]][name, default: [:]][key] = n }
                    else if let n = number as? Int { thresholds[section, default: [:]][name, default: [:]][key] = Double(n) }
                    else { problems.append("\(section).\(name).\(key): must be a number") }
                }
            }
        }
        return thresholds
    }
}
