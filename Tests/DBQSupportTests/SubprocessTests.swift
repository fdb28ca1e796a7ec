import DBQSupport
import Foundation
import Testing

@Suite("Child processes")
struct SubprocessTests {
    @Test("isRunning turns false once the child ends, and wait still returns its status")
    func isRunning() async throws {
        let child = try Subprocess("/bin/sh", arguments: ["-c", "sleep 0.2; exit 3"], environment: [:])
        #expect(child.isRunning)
        var polls = 0
        while child.isRunning && polls < 500 {
            polls += 1
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(!child.isRunning)
        #expect(await child.wait() == 3)
        #expect(child.peakResidentBytes != nil)
    }

    @Test("a killed child reports 128 + the signal")
    func killed() async throws {
        let child = try Subprocess("/bin/sleep", arguments: ["3600"], environment: [:])
        child.kill(SIGKILL)
        #expect(await child.wait() == 128 + SIGKILL)
        #expect(!child.isRunning)
    }

    @Test("a child starts with every signal at its default and none blocked, though dbq ignores some: a plain kill ends it")
    func signalsAtDefault() async throws {
        // As in a worker: SIGPIPE ignored by dbq, SIGTERM by the shutdown handler (and SIGHUP
        // here, which nothing sends a test process).
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let child = try Subprocess("/bin/sleep", arguments: ["3600"], environment: [:])
        let status = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
        func mask(_ name: String) -> String? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
        // Signals 1–31 (32 and above are the C library's own and real-time ones).
        func standard(_ name: String) -> UInt64? { mask(name).flatMap { UInt64($0, radix: 16) }.map { $0 & 0x7fff_ffff } }
        #expect(standard("SigIgn") == 0, "signals the child ignores: \(mask("SigIgn") ?? "?")")
        #expect(standard("SigBlk") == 0, "signals the child blocks: \(mask("SigBlk") ?? "?")")
        child.kill(SIGHUP)
        #expect(await child.wait() == 128 + SIGHUP)
    }

    @Test("a missing program is named, with where it was looked for")
    func missing() {
        #expect(Subprocess.locate("dbq-no-such-program") == nil)
        #expect(Subprocess.locate("sh") != nil)
        #expect(throws: SubprocessError.self) { try Subprocess("dbq-no-such-program", arguments: [], environment: [:]) }
    }

    @Test("the peak RSS of a live process is read from /proc")
    func peakOfLiveProcess() async throws {
        let child = try Subprocess("/bin/sleep", arguments: ["3600"], environment: [:])
        defer { child.kill(SIGKILL); _ = child.waitBlocking() }
        let peak = try #require(ProcessStats.peakResidentBytes(pid: child.pid))
        #expect(peak > 0 && peak < 64 << 20)
        #expect(ProcessStats.peakResidentBytes(pid: 0x7FFF_FFFE) == nil)
    }

    @Test("isRunning never blocks, even while a grandchild still holds the child's standard error")
    func isRunningDoesNotBlock() async throws {
        // The shell ends at once; the sleep it leaves behind keeps stderr open for 20 s.
        let child = try Subprocess("/bin/sh", arguments: ["-c", "sleep 20 & exit 0"], environment: [:])
        var polls = 0
        var longest = Duration.zero
        while polls < 5000 {
            // Each call timed alone: scheduling delays between calls do not count.
            let started = ContinuousClock.now
            let running = child.isRunning
            longest = max(longest, ContinuousClock.now - started)
            if !running { break }
            polls += 1
            try await Task.sleep(for: .milliseconds(10))
        }
        // The old code waited up to 5 s for the grandchild inside the call that reaped.
        #expect(longest < .seconds(2), "one isRunning call took \(longest)")
        #expect(!child.isRunning)
    }

    @Test("kill after the child was reaped signals nothing (its pid may belong to another process now)")
    func killAfterReap() async throws {
        let child = try Subprocess("/bin/sh", arguments: ["-c", "exit 7"], environment: [:])
        #expect(await child.wait() == 7)
        // Whatever process holds that pid now must not be touched: kill is a no-op.
        child.kill(SIGKILL)
        #expect(await child.wait() == 7)
        #expect(!child.isRunning)
    }

    @Test("wait and kill from many tasks at once: one status, no signal after the reap")
    func concurrentWaitAndKill() async throws {
        // A child that cannot end by itself during the test: a kill that a loaded machine
        // delays still finds it running (`sleep 30` once ended on its own first, status 0).
        let child = try Subprocess("/bin/sleep", arguments: ["3600"], environment: [:])
        let statuses = await withTaskGroup(of: Int32.self) { group in
            for _ in 0..<4 { group.addTask { await child.wait() } }
            group.addTask { child.kill(SIGKILL); return await child.wait() }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(statuses) == [128 + SIGKILL])
        // Every waiter got through the drain of standard error, not one of them after a 5 s timeout.
    }
}
