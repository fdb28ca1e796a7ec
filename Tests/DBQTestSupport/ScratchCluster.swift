import DBQSupport
import Foundation

/// A PostgreSQL cluster of a test's own (initdb, on a free loopback port, owned by the
/// `postgres` user, since the server refuses root), for what the shared server cannot be
/// reconfigured for: archiving through dbq, restores into new data directories. Lives in
/// `/var/tmp/dbq-cluster-<id>/`, which `postgres` can reach whatever the checkout's
/// permissions; `remove()` stops it and deletes it.
public final class ScratchCluster: @unchecked Sendable {
    public let directory: String
    public let dataDirectory: String
    public let port: Int
    public let bin: String
    /// The environment the server runs with (its archive_command inherits it).
    let environment: [String: String]

    /// The PostgreSQL binaries the suite runs against: `DBQ_PG_BIN_DIRS`' first entry (the
    /// PostgreSQL 18 pass sets it), else PostgreSQL 15's.
    public static var binaries: String {
        if let dirs = ProcessInfo.processInfo.environment["DBQ_PG_BIN_DIRS"], let first = dirs.split(separator: ":").first { return String(first) }
        return "/usr/lib/postgresql/15/bin"
    }

    /// `postgresql://postgres@127.0.0.1:<port>/postgres` (trust on loopback: a test cluster).
    public func url(_ database: String = "postgres") -> String { "postgresql://postgres@127.0.0.1:\(port)/\(database)" }

    /// A new cluster, not yet started; `settings` are appended to its postgresql.conf.
    public init(settings: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        directory = "/var/tmp/dbq-cluster-" + UUID().uuidString.prefix(8).lowercased()
        dataDirectory = directory + "/data"
        port = try Self.freePort()
        bin = Self.binaries
        self.environment = environment
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try Self.run(["chown", "postgres:", directory])
        try asPostgres([bin + "/initdb", "-D", dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"])
        let conf = ["listen_addresses = '127.0.0.1'", "port = \(port)", "unix_socket_directories = '\(directory)'",
                    "fsync = off", "max_wal_senders = 4", "wal_level = replica"] + settings
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(("\n" + conf.joined(separator: "\n") + "\n").utf8))
        try handle.close()
    }

    /// Copies a file here, readable and executable by every user (the server's commands
    /// run as `postgres`, which may not reach the checkout).
    public func install(_ path: String, as name: String) throws -> String {
        let target = directory + "/" + name
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: path, toPath: target)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: target)
        return target
    }

    public func start() throws {
        try asPostgres([bin + "/pg_ctl", "-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60", "start"])
    }

    public func stop(mode: String = "fast") {
        _ = try? asPostgres([bin + "/pg_ctl", "-D", dataDirectory, "-w", "-t", "60", "-m", mode, "stop"])
    }

    /// Stops a server started from another data directory (a restore's).
    public func stop(dataDirectory other: String) {
        _ = try? asPostgres([bin + "/pg_ctl", "-D", other, "-w", "-t", "60", "-m", "immediate", "stop"])
    }

    /// Stops every server this cluster's folder holds and deletes it.
    public func remove(also others: [String] = []) {
        for other in others { stop(dataDirectory: other) }
        stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var log: String { (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "" }

    @discardableResult
    func asPostgres(_ arguments: [String]) throws -> String {
        try Self.run(["runuser", "-u", "postgres", "--"] + arguments, environment: environment)
    }

    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let p = try Subprocess("/usr/bin/env", arguments: arguments, environment: environment)
        guard p.waitBlocking() == 0 else {
            throw SubprocessError("\(arguments.joined(separator: " ")) failed: \(p.standardError.suffix(2000))")
        }
        return p.standardError
    }

    /// A port nothing listens on now (bound and released).
    public static func freePort() throws -> Int {
        guard let port = LoopbackPort.free() else { throw SubprocessError("no free port") }
        return port
    }
}
