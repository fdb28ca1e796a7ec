import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import RedisClient
import Yams

/// One named storage of the configuration.
public struct StorageSettings: Sendable, Equatable {
    public var url: StorageURL
    public var endpoint: String?
    public var region: String
    public var addressing: S3Configuration.Addressing?
    /// From the file; the environment's AWS_* keys are used when these are absent.
    public var accessKeyID: String?
    public var secretAccessKey: String?
    public var partSizeMiB: Int
    /// S3: parts in one object at most; a longer stream (a dump) continues in another object,
    /// so parts never grow and an upload's memory stays the same whatever its size.
    public var partsPerObject: Int
    /// `encryption: {key_env: NAME, old_keys_env: NAME}`: every object but manifests is
    /// encrypted at rest under the key in `$NAME` (64 hex digits or base64 of 32 bytes);
    /// `old_keys_env` names decrypt-only keys, comma-separated (rotation).
    public var encryption: Encryption?
    /// `sse: AES256` or `sse: aws:kms` (with `sse_kms_key_id`): S3 server-side encryption
    /// asked on every upload.
    public var serverSideEncryption: S3Configuration.ServerSideEncryption?

    public struct Encryption: Sendable, Equatable {
        public var keyEnv: String
        public var oldKeysEnv: String?
        public init(keyEnv: String, oldKeysEnv: String? = nil) {
            self.keyEnv = keyEnv
            self.oldKeysEnv = oldKeysEnv
        }
    }

    /// At most `partsPerSizeStep`: past it S3 parts would double.
    public static let defaultPartsPerObject = S3Configuration.partsPerSizeStep

    public init(url: StorageURL, endpoint: String? = nil, region: String = "us-east-1", addressing: S3Configuration.Addressing? = nil,
                accessKeyID: String? = nil, secretAccessKey: String? = nil, partSizeMiB: Int = S3Configuration.defaultPartSize >> 20,
                partsPerObject: Int = defaultPartsPerObject) {
        self.url = url
        self.endpoint = endpoint
        self.region = region
        self.addressing = addressing
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.partSizeMiB = partSizeMiB
        self.partsPerObject = partsPerObject
    }

    /// The most bytes one object of a long stream holds in this storage: unlimited in a
    /// local directory (a file costs no memory), `part size × parts per object` in S3.
    public var objectLimit: Int64 {
        switch url {
        case .s3: Int64(partSizeMiB) << 20 * Int64(partsPerObject)
        default: Int64.max
        }
    }
}

extension StorageSettings {
    /// Opens the store; credentials from the file, else from AWS_* in the environment.
    public func open(logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> any ObjectStore {
        var credentials: AWSCredentials?
        if let id = accessKeyID, let secret = secretAccessKey { credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret) }
        var options = S3Options(endpoint: endpoint, region: region, addressing: addressing, credentials: credentials, partSize: partSizeMiB << 20)
        options.serverSideEncryption = serverSideEncryption
        let store = try url.open(options: options, logger: logger)
        guard let encryption else { return store }
        // Without the current key the store still lists and reads manifests; it refuses to
        // write, and to read an object, naming the fingerprint it needs.
        let current = try environment[encryption.keyEnv].flatMap { $0.isEmpty ? nil : $0 }
            .map { try EncryptedObjects.Key(text: $0, name: encryption.keyEnv) }
        let old = try (encryption.oldKeysEnv.flatMap { environment[$0] } ?? "").split(separator: ",")
            .map { try EncryptedObjects.Key(text: String($0), name: encryption.oldKeysEnv ?? "old keys") }
        return EncryptedStore(base: store, current: current, old: old, keySource: encryption.keyEnv)
    }
}

/// The effective configuration: `dbq.yaml` (path by `--config` or `DBQ_CONFIG`) with
/// environment overrides.
///
/// ```yaml
/// redis: redis://:password@127.0.0.1:6379/0
/// databases:
///   main: postgresql://backup@db.internal/main
/// storages:
///   archive: {url: "s3://bucket/prefix", endpoint: "https://s3.eu-west-1.amazonaws.com", region: eu-west-1}
///   local:   {url: "file:///var/backups/dbq"}
/// worker: {queues: "critical:3,default:1", concurrency: 8}
/// schedule: jobs/schedule.yaml
/// migrations: {main: jobs/migrations}
/// ```
///
/// Overrides: `DBQ_REDIS_URL`, `DBQ_DATABASE_URL_<NAME>`, `DBQ_STORAGE_URL_<NAME>`,
/// `DBQ_WORKER_QUEUES`, `DBQ_WORKER_CONCURRENCY`, `DBQ_SCHEDULE` (names upper-cased,
/// `-` as `_`). Without any storage, backups go to the local directory `./.dbq-storage`.
public struct DBQConfiguration: Sendable, Equatable {
    public var redis: RedisConfiguration?
    public var databases: [String: PostgresConnectionString]
    public var storages: [String: StorageSettings]
    public var workerQueues: String
    public var workerConcurrency: Int
    public var schedule: String
    /// Database name → the folder of its migration files (`NNNN_name.up.sql`).
    public var migrations: [String: String] = [:]
    /// Database name → its range-partitioned tables that `dbq push partitions` keeps.
    public var partitions: [String: [PartitionSetting]] = [:]
    /// Database name → maintenance thresholds (`deadRatio: 0.2`, …) that override the
    /// defaults for that database; flags of a run override these.
    public var maintenance: [String: [String: Double]] = [:]
    /// Database name → health thresholds (`replicationLagWarning: 30`, …).
    public var health: [String: [String: Double]] = [:]
    /// `alerts:`: where messages about conditions go.
    public var alerts: [AlertReceiver] = []
    /// Where it was read from; nil when no file was used.
    public var file: String?

    static let topKeys: Set<String> = ["redis", "databases", "storages", "worker", "schedule", "migrations", "partitions", "maintenance", "health", "alerts"]
    static let partitionKeys: Set<String> = ["table", "interval", "premake", "retention", "retention_action"]
    static let storageKeys: Set<String> = ["url", "endpoint", "region", "addressing", "access_key_id", "secret_access_key", "part_size_mib", "parts_per_object", "encryption", "sse", "sse_kms_key_id"]
    static let workerKeys: Set<String> = ["queues", "concurrency"]

    /// The embedded default store when no storage is configured: `.dbq-storage` in the
    /// working directory.
    public static var embeddedStorageURL: String { "file://\(FileManager.default.currentDirectoryPath)/.dbq-storage" }

    /// The storage used when none is named: `archive` if present, else the only one, else
    /// the embedded local default.
    public func defaultStorageName() -> String? {
        if storages["archive"] != nil { return "archive" }
        return storages.count == 1 ? storages.keys.first : nil
    }

    /// Reads the file (if any) and applies the environment; every problem is named with
    /// its path in the file.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> DBQConfiguration {
        var text = ""
        var file: String?
        if let path = path ?? environment["DBQ_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError(file: path, problems: ["cannot read the file (does it exist?)"])
            }
            text = String(decoding: data, as: UTF8.self)
            file = path
        } else if let data = FileManager.default.contents(atPath: "dbq.yaml") {
            text = String(decoding: data, as: UTF8.self)
            file = "dbq.yaml"
        }
        return try parse(text, file: file, environment: environment)
    }

    public static func parse(_ text: String, file: String?, environment: [String: String]) throws(ConfigurationError) -> DBQConfiguration {
        let where_ = file ?? "(environment)"
        var root: [String: Any] = [:]
        if !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let document: Any?
            do { document = try Yams.load(yaml: text) } catch {
                throw ConfigurationError(file: where_, problems: ["not valid YAML: \(error)"])
            }
            // A file of comments only is an empty configuration.
            if document == nil { return try parse("", file: file, environment: environment) }
            guard let mapping = document as? [String: Any] else {
                throw ConfigurationError(file: where_, problems: ["the top level must be a mapping (redis, databases, storages, worker, schedule)"])
            }
            root = mapping
        }
        var parser = ConfigurationParser(root: root, environment: environment)
        parser.unknownTopKeys()
        let redis = parser.redis()
        let databases = parser.databases()
        let storages = parser.storages()
        let worker = parser.worker()
        let migrations = parser.migrations(databases: databases)
        let partitions = parser.partitions(databases: databases)
        let thresholds = parser.thresholds(databases: databases)
        let alerts = parser.alerts()
        if !parser.problems.isEmpty { throw ConfigurationError(file: where_, problems: parser.problems) }
        var configuration = DBQConfiguration(redis: redis, databases: databases, storages: storages, workerQueues: worker.queues,
                                             workerConcurrency: worker.concurrency, schedule: worker.schedule, file: file)
        configuration.migrations = migrations
        configuration.partitions = partitions
        configuration.maintenance = thresholds["maintenance"] ?? [:]
        configuration.health = thresholds["health"] ?? [:]
        configuration.alerts = alerts
        return configuration
    }

    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// The configuration as YAML with every secret masked: for `dbq config show`.
    public var redactedYAML: String {
        var lines: [String] = ["# effective configuration" + (file.map { " (\($0) + environment)" } ?? " (environment only)")]
        lines.append("redis: \(redis?.redactedURL ?? "null")")
        lines.append("databases:" + (databases.isEmpty ? " {}" : ""))
        for (name, db) in databases.sorted(by: { $0.key < $1.key }) { lines.append("  \(name): \(db.description)") }
        lines.append("storages:" + (storages.isEmpty ? " {}  # backups go to file://./.dbq-storage" : ""))
        for (name, s) in storages.sorted(by: { $0.key < $1.key }) {
            var parts = ["url: \(s.url.description)"]
            if let endpoint = s.endpoint { parts.append("endpoint: \(Redaction.url(endpoint))") }
            if case .s3 = s.url {
                parts.append("region: \(s.region)")
                if let a = s.addressing { parts.append("addressing: \(a.rawValue)") }
                parts.append("part_size_mib: \(s.partSizeMiB)")
                if s.partsPerObject != StorageSettings.defaultPartsPerObject { parts.append("parts_per_object: \(s.partsPerObject)") }
                parts.append(s.accessKeyID.map { "access_key_id: \($0), secret_access_key: \(Redaction.mask)" } ?? "credentials: from AWS_* environment")
            }
            lines.append("  \(name): {\(parts.joined(separator: ", "))}")
        }
        lines.append("worker: {queues: \"\(workerQueues)\", concurrency: \(workerConcurrency)}")
        lines.append("schedule: \(schedule)")
        if !migrations.isEmpty {
            lines.append("migrations: {" + migrations.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}")
        }
        if !alerts.isEmpty {
            lines.append("alerts:")
            for r in alerts {
                lines.append("  - {name: \(r.name), \(r.kind.rawValue): \(r.redactedURL), on: [\(r.on.map(\.rawValue).sorted().joined(separator: ", "))], repeat: \(Int(r.repeatSeconds))s}")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Why `name` is not a configured database, in one message that says what to do. A
    /// URL given where a name belongs is told apart (and its password masked).
    public func unknownDatabase(_ name: String) -> String {
        let known = databases.keys.sorted()
        let configured = known.isEmpty ? "no databases are configured" : "configured: \(known.joined(separator: ", "))"
        if name.contains("://") {
            return "--database takes the name of a configured database, not a URL (\(Redaction.url(name))): "
                + "name it under databases: in dbq.yaml (main: \"postgresql://…\") or set DBQ_DATABASE_URL_MAIN, then pass --database main; \(configured)"
        }
        return "unknown database '\(name)'; \(configured) (add it under databases: in dbq.yaml or set DBQ_DATABASE_URL_\(name.uppercased().replacingOccurrences(of: "-", with: "_")))"
    }
}

/// Everything wrong with a configuration, each problem with its path.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var problems: [String]

    public init(file: String, problems: [String]) {
        self.file = file
        self.problems = problems
    }

    public var description: String {
        "configuration \(file) has \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// One range-partitioned table of `partitions:` in dbq.yaml.
public struct PartitionSetting: Sendable, Equatable {
    public static let intervals = ["hourly", "daily", "weekly", "monthly", "yearly"]
    public var table: String
    public var interval: String
    public var premake: Int
    public var retentionSeconds: Double?
    public var retentionAction: String

    /// `36h`, `90d`, `12w`.
    static func duration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("h", 3600), ("d", 86_400), ("w", 7 * 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast()), n > 0 { return n * scale }
        }
        return nil
    }
}
