import Synchronization

/// A wake-up that is not lost: `signal()` before `wait()` makes the next wait return at
/// once. A waiting task that is cancelled returns at once too.
final class AsyncSignal: Sendable {
    private struct State {
        var signalled = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            if s.waiters.isEmpty {
                s.signalled = true
                return []
            }
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    func wait() async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { s -> Bool in
                    if s.signalled || Task.isCancelled {
                        s.signalled = false
                        return true
                    }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

/// Resumes one waiter when the first of several racers finishes; later finishes are no-ops.
final class FirstToFinish: Sendable {
    private struct State {
        var finished = false
        var continuation: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard !s.finished else { return nil }
            s.finished = true
            defer { s.continuation = nil }
            return s.continuation
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.finished { return true }
                s.continuation = c
                return false
            }
            if now { c.resume() }
        }
    }
}
