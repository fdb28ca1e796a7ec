@testable import Backups
@testable import DatabaseJobs
import DBQSupport
import Foundation
import Testing

@Suite("The dump's read-ahead")
struct PipeReaderTests {
    @Test("a reader dropped mid-stream, its chunks never released (a job cancelled mid-dump), is freed without a trap", arguments: [0, 1, 2])
    func droppedMidStream(_ taken: Int) async throws {
        let process = try Subprocess("/bin/sh", arguments: ["-c", "head -c 20000000 /dev/zero"], environment: [:], pipeStdout: true)
        do {
            let reader = PipeReader(process: process, chunk: 256 << 10)
            for _ in 0..<taken { _ = try reader.next() }
            reader.stop()
            // The reader thread still holds the object; let it see `stop` and exit.
            try await Task.sleep(for: .milliseconds(200))
        }
        process.kill()
        _ = await process.wait()
        // Had the semaphore been freed below its initial value, libdispatch would have
        // trapped the whole test process by now.
        try await Task.sleep(for: .milliseconds(200))
    }
}
