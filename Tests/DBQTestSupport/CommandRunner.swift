import DBQSupport
import Foundation

/// What a finished command printed and how it exited.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs an executable to completion (killing it after `timeout`), with extra environment.
/// The waiting happens on a blocking lane, never on a thread of the cooperative pool.
public func runCommand(
    _ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
    removing: [String] = [], stdin: Data? = nil, timeout: TimeInterval = 60
) async throws -> CommandResult {
    try await BlockingLane.detached(label: "dbq.test.process") {
        try runCommandBlocking(executable, arguments, environment: extra, removing: removing, stdin: stdin, timeout: timeout)
    }
}

private func runCommandBlocking(
    _ executable: String, _ arguments: [String], environment extra: [String: String],
    removing: [String], stdin: Data?, timeout: TimeInterval
) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (name, value) in extra { environment[name] = value }
    for name in removing { environment[name] = nil }
    process.environment = environment
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try? input.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    // Read while waiting so a chatty child never blocks on a full pipe.
    let outData = LockedData(), errData = LockedData()
    let group = DispatchGroup()
    for (pipe, sink) in [(out, outData), (err, errData)] {
        group.enter()
        // A queue of its own: the global queue has one thread per core and these block.
        DispatchQueue(label: "dbq.test.pipe").async {
            sink.set(pipe.fileHandleForReading.readDataToEndOfFile())
            group.leave()
        }
    }
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    group.wait()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: outData.get(), as: UTF8.self),
                         stderr: String(decoding: errData.get(), as: UTF8.self))
}

private final class LockedData: @unchecked Sendable {
    // @unchecked Sendable: every access is under `lock`.
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}
