/// Polls `condition` every `interval` until it holds or `timeout` passes. An error counts
/// as "not yet" (a server may be restarting); if time runs out, the last error is thrown,
/// else false is returned. Every deadline-polling loop of the tests is this one.
public func eventually(_ timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(50),
                       _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    var lastError: (any Error)?
    while ContinuousClock.now < deadline {
        do {
            if try await condition() { return true }
            lastError = nil
        } catch {
            lastError = error
        }
        try await Task.sleep(for: interval)
    }
    if let lastError { throw lastError }
    return false
}

/// Reads `probe` every `interval` until `done` accepts what it read or `timeout` passes;
/// returns the last value read (for the test's message when it never got there).
public func polled<T>(_ timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(250),
                      _ probe: () async throws -> T, until done: (T) -> Bool) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    var value = try await probe()
    while !done(value) && ContinuousClock.now < deadline {
        try await Task.sleep(for: interval)
        value = try await probe()
    }
    return value
}
