import DBQSupport
import Foundation

/// A process started by a test and left running: signals, exit status, output files.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked Sendable: Process is used from one test at a time; its methods are thread-safe for these calls.
    public let process = Process()
    public let stdoutPath: String
    public let stderrPath: String

    public init(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws {
        let dir = TestServices.temporaryDirectory("dbq-child")
        stdoutPath = dir + "/stdout"
        stderrPath = dir + "/stderr"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in extra { environment[k] = v }
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// Waits up to `timeout` for the process to exit; its status, or nil if still running
    /// (then it is killed).
    public func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            // Not waitUntilExit: Foundation sees the exit only once every descendant has let
            // go of a socket it passes down, and an orphaned grandchild could hold it forever.
            let grace = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < grace { try? await Task.sleep(for: .milliseconds(20)) }
            return nil
        }
        return process.terminationStatus
    }

    /// Peak resident memory so far (VmHWM), from /proc.
    public var peakResidentBytes: Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A Redis server of the test's own, on a free loopback port, with its own settings and
/// data directory: for tests that restart or reconfigure Redis. It runs in the
/// foreground as a child of the test, so the test can crash it with SIGKILL.
public final class ScratchRedis: @unchecked Sendable {
    // @unchecked Sendable: `server` is replaced only by start() and crash(), called in order by one test.
    public let port: Int
    public let directory: String
    let arguments: [String]
    private var server: ChildProcess?

    public init(_ extra: [String] = []) throws {
        directory = TestServices.temporaryDirectory("dbq-redis")
        let probe = try SilentServer()  // borrow a free port number
        port = probe.port
        arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
                     "--logfile", directory + "/redis.log", "--dir", directory] + extra
    }

    public var url: String { "redis://127.0.0.1:\(port)/0" }

    public func start() async throws {
        server = try ChildProcess("/usr/bin/redis-server", arguments)
        for _ in 0..<100 {
            let ping = try await runCommand("/usr/bin/redis-cli", ["-p", String(port), "ping"])
            if ping.stdout.contains("PONG") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw POSIXError(.ETIMEDOUT)
    }

    /// Kills the server with SIGKILL: a crash, not a shutdown.
    public func crash() async {
        server?.signal(SIGKILL)
        _ = await server?.wait(timeout: .seconds(10))
        server = nil
    }

    deinit {
        server?.signal(SIGKILL)
    }
}

/// Signals sent at wall-clock instants from a thread of their own: a test's own tasks
/// share the cooperative pool with every other test, and a CPU-bound neighbour can make
/// a `Task.sleep` wake seconds late, moving a fault away from the instant it must hit.
public enum TimedSignals {
    public struct Step: Sendable {
        public let at: Date
        public let signals: [(pid: Int32, signal: Int32)]
        public init(at: Date, _ signals: [(pid: Int32, signal: Int32)]) { self.at = at; self.signals = signals }
    }

    /// Sends each step's signals at its instant (in order); returns when the last is sent,
    /// with the instant each step was actually sent.
    public static func run(_ steps: [Step]) async -> [Date] {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var sent: [Date] = []
                for step in steps {
                    let wait = step.at.timeIntervalSinceNow
                    if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                    for (pid, signal) in step.signals { kill(pid, signal) }
                    sent.append(Date())
                }
                continuation.resume(returning: sent)
            }
            thread.start()
        }
    }
}
