import DBQSupport
import Foundation

/// The servers the integration tests use: from `DBQ_TEST_*` variables, else from the
/// `.dev/env` file `deploy/local/start.sh` writes, else the loopback defaults of that
/// script. A test that cannot reach its server fails; none is skipped.
public enum TestServices {
    public static var redisURL: String {
        value("DBQ_TEST_REDIS_URL") ?? "redis://:dbq-local@127.0.0.1:16379/0"
    }

    /// The local Redis Cluster `deploy/local/cluster.sh` starts (for the failover tests).
    public static var clusterURL: String {
        value("DBQ_TEST_CLUSTER_URL") ?? devFile("cluster.env")["DBQ_CLUSTER_URL"] ?? "redis+cluster://:dbq-local@127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003"
    }

    /// Where the cluster's nodes keep their pid files (`PORT/redis.pid`).
    public static var clusterDirectory: String {
        value("DBQ_TEST_CLUSTER_DIR") ?? devFile("cluster.env")["DBQ_CLUSTER_DIR"] ?? projectRoot + "/.dev/cluster"
    }

    public static var databaseURL: String {
        value("DBQ_TEST_DATABASE_URL") ?? "postgresql://postgres:dbq-local@127.0.0.1:15432/postgres"
    }

    public static var s3Endpoint: String {
        value("DBQ_TEST_S3_ENDPOINT") ?? "http://127.0.0.1:19000"
    }

    public static var s3Bucket: String {
        value("DBQ_TEST_S3_BUCKET") ?? "dbq-local"
    }

    /// The access key and secret of the S3 user start.sh created.
    public static var s3AccessKey: String { value("AWS_ACCESS_KEY_ID") ?? "missing-run-deploy-local-start" }
    public static var s3SecretKey: String { value("AWS_SECRET_ACCESS_KEY") ?? "missing-run-deploy-local-start" }

    /// The project's root directory.
    public static let projectRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The built `dbq` executable.
    public static var dbqBinary: String {
        if let given = value("DBQ_BINARY") { return given }
        for candidate in [".build/debug/dbq", ".build/release/dbq"] {
            let path = projectRoot + "/" + candidate
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return projectRoot + "/.build/debug/dbq"
    }

    /// A fresh directory under the system's temporary directory.
    public static func temporaryDirectory(_ label: String = "dbq-test") -> String {
        let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A loopback port nothing listens on (for refused-connection tests).
    public static let closedPort = 1

    static func value(_ name: String) -> String? {
        // Before any test's first connection: OpenSSL must not tear itself down at exit
        // under a connection a cleanup task is still opening.
        OpenSSLExit.disableCleanup
        if let v = ProcessInfo.processInfo.environment[name], !v.isEmpty { return v }
        return devEnv[name]
    }

    private static let devEnv: [String: String] = devFile("env")

    /// The `export NAME='value'` lines of a file under `.dev/`.
    public static func devFile(_ name: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: projectRoot + "/.dev/" + name, encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let assignment = line.dropFirst("export ".count)
            guard let eq = assignment.firstIndex(of: "=") else { continue }
            var v = String(assignment[assignment.index(after: eq)...])
            if v.hasPrefix("'") && v.hasSuffix("'") && v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            values[String(assignment[..<eq])] = v
        }
        return values
    }
}
