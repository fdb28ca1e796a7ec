import CDBQSystem
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process (`pg_dump`, `pg_restore`) with pipes for the streams the caller wants.
///
/// Spawned with `posix_spawn`; every pipe end the parent keeps is close-on-exec, so a
/// child never holds another child's pipe open. Reads and writes block and run on the
/// caller's lane; standard error is drained on its own lane (the last 16 KiB are kept
/// for the error message), so a chatty child never stalls.
public final class Subprocess: @unchecked Sendable {
    // @unchecked Sendable: the fds are set once; stdin/stdout are used by one owner in
    // turn, `stderrTail` is behind a mutex, `status` is set once by `wait`.
    public let pid: pid_t
    public let executable: String
    /// Write end of the child's standard input, if piped.
    public private(set) var stdinFD: Int32?
    /// Read end of the child's standard output, if piped.
    public private(set) var stdoutFD: Int32?
    private let stderrTail = TailBuffer()
    private let stderrDone = DispatchSemaphore(value: 0)
    /// The exit status once reaped; reaping and `kill` both hold this lock.
    private let exit = Mutex<Int32?>(nil)
    private let stderrDrained = Mutex(false)
    private let peak = Mutex<Int?>(nil)

    /// Starts `executable` (a path, or a name looked up in `PATH`).
    public init(_ executable: String, arguments: [String], environment: [String: String],
                pipeStdin: Bool = false, pipeStdout: Bool = false) throws {
        guard let path = Self.resolve(executable) else {
            throw SubprocessError("cannot find '\(executable)' (looked in PATH: \(ProcessInfo.processInfo.environment["PATH"] ?? "")); install it or set its path")
        }
        self.executable = path
        Self.ignoreSIGPIPE
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }

        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            guard CSystem_pipe_cloexec(&fds) == 0 else {
                throw SubprocessError("cannot create a pipe for \(executable): \(String(cString: strerror(errno)))")
            }
            return (fds[0], fds[1])
        }
        do {
            var stdinPipe: (read: Int32, write: Int32)?
            var stdoutPipe: (read: Int32, write: Int32)?
            if pipeStdin {
                let p = try makePipe()
                stdinPipe = p
                _ = fcntl(p.write, 1031, Int32(1 << 20))
                parentEnds.append(p.write)
                childEnds.append(p.read)
                posix_spawn_file_actions_adddup2(&fileActions, p.read, 0)
            } else {
                posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
            }
            if pipeStdout {
                let p = try makePipe()
                stdoutPipe = p
                // A 1 MiB pipe (F_SETPIPE_SZ = 1031): fewer wake-ups at hundreds of MB/s.
                _ = fcntl(p.read, 1031, Int32(1 << 20))
                parentEnds.append(p.read)
                childEnds.append(p.write)
                posix_spawn_file_actions_adddup2(&fileActions, p.write, 1)
            } else {
                posix_spawn_file_actions_addopen(&fileActions, 1, "/dev/null", O_WRONLY, 0)
            }
            let errPipe = try makePipe()
            parentEnds.append(errPipe.read)
            childEnds.append(errPipe.write)
            posix_spawn_file_actions_adddup2(&fileActions, errPipe.write, 2)
            // Nothing but 0, 1 and 2 reaches the child: not even descriptors this process
            // inherited without close-on-exec (they would outlive dbq in an orphaned child).
            _ = CSystem_spawn_closefrom(&fileActions, 3)

            let argv = ([path] + arguments).map { strdup($0) } + [nil]
            let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer {
                argv.forEach { free($0) }
                envp.forEach { free($0) }
            }
            // Every signal at its default and none blocked: dbq ignores SIGPIPE, and a
            // worker's SIGTERM and SIGINT are ignored for the shutdown handler's sake — a
            // child would inherit that and outlive a plain `kill`.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var defaults = sigset_t(), mask = sigset_t()
            sigfillset(&defaults)
            sigemptyset(&mask)
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            posix_spawnattr_setsigmask(&attributes, &mask)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
            var child: pid_t = 0
            let rc = posix_spawn(&child, path, &fileActions, &attributes, argv, envp)
            guard rc == 0 else {
                throw SubprocessError("cannot start \(path): \(String(cString: strerror(rc)))")
            }
            pid = child
            childEnds.forEach { close($0) }
            childEnds = []
            stdinFD = stdinPipe?.write
            stdoutFD = stdoutPipe?.read
            let errFD = errPipe.read
            let tail = stderrTail
            let done = stderrDone
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(errFD, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    tail.bytes.withLock { kept in
                        kept.append(contentsOf: buffer[0..<n])
                        if kept.count > 16 << 10 { kept.removeFirst(kept.count - (16 << 10)) }
                    }
                }
                close(errFD)
                done.signal()
            }
        } catch {
            (parentEnds + childEnds).forEach { close($0) }
            throw error
        }
    }

    deinit {
        if let stdinFD { close(stdinFD) }
        if let stdoutFD { close(stdoutFD) }
    }

    /// Reads the child's output until `buffer` is full or the output ends; returns the
    /// number of bytes read (0 at the end). Blocks: call it on a lane.
    public func readStdout(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let fd = stdoutFD else { return 0 }
        var filled = 0
        while filled < buffer.count {
            let n = read(fd, buffer.baseAddress!.advanced(by: filled), buffer.count - filled)
            if n > 0 {
                filled += n
            } else if n == 0 {
                break
            } else if errno != EINTR {
                throw SubprocessError("cannot read the output of \(executable): \(String(cString: strerror(errno)))")
            }
        }
        return filled
    }

    /// Writes all of `bytes` to the child's input. Blocks: call it on a lane.
    public func writeStdin(_ bytes: UnsafeRawBufferPointer) throws {
        guard let fd = stdinFD else { return }
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress!.advanced(by: offset), bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SubprocessError("\(executable) stopped reading its input: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Closes the child's input: it sees the end of the stream.
    public func closeStdin() {
        if let fd = stdinFD { close(fd) }
        stdinFD = nil
    }

    public func closeStdout() {
        if let fd = stdoutFD { close(fd) }
        stdoutFD = nil
    }

    /// Sends `signal` to the child unless it has been reaped. Reaping and signalling
    /// hold one lock, and the blocking wait never reaps (it waits with `WNOWAIT`), so a
    /// signal can never reach another process that reused the pid.
    public func kill(_ signal: Int32 = SIGTERM) {
        exit.withLock { status in
            if status == nil { _ = Glibc.kill(pid, signal) }
        }
    }

    /// Waits for the child to end and returns its exit status (128 + signal when killed).
    /// Runs on a lane of its own: the wait blocks.
    public func wait() async -> Int32 {
        if let status = exit.withLock({ $0 }), stderrDrained.withLock({ $0 }) { return status }
        return await BlockingLane(label: "dbq.wait").run { self.waitBlocking() }
    }

    /// `wait` for callers already on a lane. Blocks until the child ends and its standard
    /// error is drained (at most 5 s more, if a grandchild still holds it).
    public func waitBlocking() -> Int32 {
        while exit.withLock({ $0 }) == nil {
            var info = siginfo_t()
            // Blocks until the child has ended, and leaves it a zombie: its pid stays
            // taken until `reap` runs under the lock.
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == 0 {
                _ = reap()
            } else if errno != EINTR {
                exit.withLock { if $0 == nil { $0 = -1 } }
            }
        }
        drainStderr()
        return exit.withLock { $0 } ?? -1
    }

    /// False once the child has ended (it is reaped then; `wait` returns its status).
    /// Never blocks.
    public var isRunning: Bool {
        if exit.withLock({ $0 }) != nil { return false }
        return !reap()
    }

    /// Reaps the child if it has ended (never blocking); true if it is reaped now.
    private func reap() -> Bool {
        exit.withLock { status in
            if status != nil { return true }
            var raw: Int32 = 0
            var usage = rusage()
            let rc = wait4(pid, &raw, WNOHANG, &usage)
            if rc == pid {
                peak.withLock { $0 = Int(usage.ru_maxrss) * 1024 }
                // WIFEXITED / WEXITSTATUS / WTERMSIG by hand: they are macros.
                let signal = raw & 0x7F
                status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
                return true
            }
            if rc < 0 && errno == ECHILD { status = -1; return true }
            return false
        }
    }

    /// The child is gone; its standard error ends once any grandchild lets go of it.
    private func drainStderr() {
        if stderrDrained.withLock({ $0 }) { return }
        // A latch, not a one-shot: every concurrent waiter passes once the drain is done.
        if stderrDone.wait(timeout: .now() + 5) == .success { stderrDone.signal() }
        stderrDrained.withLock { $0 = true }
    }

    /// After `wait`: the peak resident set size of the child or of any of its own children
    /// it waited for, whichever is largest (`ru_maxrss` of `wait4`), in bytes. For a shell
    /// pipeline that is its largest process.
    public var peakResidentBytes: Int? { peak.withLock { $0 } }

    /// What the child wrote to standard error (its last 16 KiB), trimmed; whole after `wait`.
    public var standardError: String {
        String(decoding: stderrTail.bytes.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A child that stops reading must be an error on write, not the end of dbq.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// The path `Subprocess` would run for `executable` (a path, or a name looked up in
    /// `PATH`), or nil if there is none.
    public static func locate(_ executable: String) -> String? { resolve(executable) }

    static func resolve(_ executable: String) -> String? {
        if executable.contains("/") { return access(executable, X_OK) == 0 ? executable : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(executable)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

public struct SubprocessError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

private final class TailBuffer: Sendable {
    let bytes = Mutex<[UInt8]>([])
}
