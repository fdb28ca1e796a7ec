import DBQSupport
import Foundation
import Queue
import Synchronization

/// Which `pg_dump` and `pg_restore` a job runs. A `pg_dump` refuses a server newer than
/// itself, and a `pg_restore` an archive from a newer `pg_dump`, so a job asks for a tool
/// at least as new as what it works with: `DBQ_PG_DUMP` / `DBQ_PG_RESTORE` when set (used
/// as they are), else the oldest version at least that new among the directories in
/// `DBQ_PG_BIN_DIRS` (colon-separated), PostgreSQL's own on the host
/// (`/usr/lib/postgresql/N/bin`) and the one on `PATH`. When none fits, the job fails
/// permanently saying which versions it found and what to install.
public enum PostgresTools {
    public struct Candidate: Sendable, Equatable {
        public var directory: String
        public var major: Int
        public init(directory: String, major: Int) {
            self.directory = directory
            self.major = major
        }
    }

    /// The candidate of the oldest major version at least `major` (the nearest to the
    /// server's, which knows it best); nil when none is that new. Pure.
    public static func choose(atLeast major: Int, among candidates: [Candidate]) -> Candidate? {
        candidates.filter { $0.major >= major }.min { ($0.major, $0.directory) < ($1.major, $1.directory) }
    }

    /// The major version in `server_version_num` (150014 → 15) or in a version text
    /// (`18.6`, `pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → 18, 15).
    public static func major(versionNumber: Int) -> Int { versionNumber / 10000 }

    public static func major(versionText text: String) -> Int? {
        let digits = text.split(whereSeparator: { !$0.isNumber && $0 != "." }).first { $0.first?.isNumber == true }
        return digits.flatMap { $0.split(separator: ".").first }.flatMap { Int($0) }
    }

    /// The tool `name` (`pg_dump`, `pg_restore`) for work with major version `major`.
    public static func tool(_ name: String, atLeast major: Int, for what: String, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> String {
        let override = name == "pg_dump" ? environment["DBQ_PG_DUMP"] : environment["DBQ_PG_RESTORE"]
        if let override, !override.isEmpty { return override }
        let found = await candidates(environment: environment)
        if let chosen = choose(atLeast: major, among: found) { return chosen.directory + "/" + name }
        let seen = found.isEmpty ? "none was found" : "found: " + found.map { "\($0.major) in \($0.directory)" }.joined(separator: ", ")
        throw JobError.permanent("\(what) needs \(name) \(major) or newer (\(seen)); install PostgreSQL \(major)'s client tools, or name the directory that holds them in DBQ_PG_BIN_DIRS")
    }

    /// Every directory with a `pg_dump` and a `pg_restore`, with its major version (each
    /// directory asked once per process).
    static func candidates(environment: [String: String]) async -> [Candidate] {
        var directories = (environment["DBQ_PG_BIN_DIRS"] ?? "").split(separator: ":").map(String.init)
        if let versions = try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            directories += versions.sorted().map { "/usr/lib/postgresql/\($0)/bin" }
        }
        for path in (environment["PATH"] ?? "").split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(path)/pg_dump") {
            // Debian's /usr/bin/pg_dump is a wrapper: the real ones are listed above.
            let real = URL(fileURLWithPath: "\(path)/pg_dump").resolvingSymlinksInPath().path
            if !real.hasSuffix("pg_wrapper") { directories.append(String(path)) }
        }
        var out: [Candidate] = []
        for directory in directories where !out.contains(where: { $0.directory == directory }) {
            guard FileManager.default.isExecutableFile(atPath: directory + "/pg_dump"),
                  FileManager.default.isExecutableFile(atPath: directory + "/pg_restore"),
                  let major = await version(of: directory) else { continue }
            out.append(Candidate(directory: directory, major: major))
        }
        return out
    }

    private static let versions = Mutex<[String: Int]>([:])

    /// `pg_dump --version`'s major, asked once per directory.
    static func version(of directory: String) async -> Int? {
        if let known = versions.withLock({ $0[directory] }) { return known }
        guard let text = try? await versionText(directory + "/pg_dump"), let major = major(versionText: text) else { return nil }
        versions.withLock { $0[directory] = major }
        return major
    }

    /// A tool's `--version`, without its name (`15.14 (Debian 15.14-0+deb12u1)`).
    public static func versionText(_ tool: String) async throws -> String {
        let process = try Subprocess(tool, arguments: ["--version"], environment: ProcessInfo.processInfo.environment, pipeStdout: true)
        let text = try await BlockingLane.detached { () throws -> String in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { buffer.deallocate() }
            let n = try process.readStdout(into: buffer)
            return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[0..<n]), as: UTF8.self)
        }
        guard await process.wait() == 0 else {
            throw JobError.permanent("\(tool) --version failed: \(process.standardError)")
        }
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return line.split(separator: ")", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? line
    }
}
