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
        let child = try Subprocess("/bin/sleep", arguments: ["30"], environment: [:])
        child.kill(SIGKILL)
        #expect(await child.wait() == 128 + SIGKILL)
        #expect(!child.isRunning)
    }

    @Test("a missing program is named, with where it was looked for")
    func missing() {
        #expect(Subprocess.locate("dbq-no-such-program") == nil)
        #expect(Subprocess.locate("sh") != nil)
        #expect(throws: SubprocessError.self) { try Subprocess("dbq-no-such-program", arguments: [], environment: [:]) }
    }

    @Test("the peak RSS of a live process is read from /proc")
    func peakOfLiveProcess() async throws {
        let child = try Subprocess("/bin/sleep", arguments: ["5"], environment: [:])
        defer { child.kill(SIGKILL); _ = child.waitBlocking() }
        let peak = try #require(ProcessStats.peakResidentBytes(pid: child.pid))
        #expect(peak > 0 && peak < 64 << 20)
        #expect(ProcessStats.peakResidentBytes(pid: 0x7FFF_FFFE) == nil)
    }
}
