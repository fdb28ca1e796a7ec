/// A pull-driven stream of byte chunks.
///
/// Nothing is produced until the consumer asks for the next chunk, so memory is bounded
/// by the size of one chunk whatever the size of the whole: this is how `COPY TO`,
/// object downloads and dump pipes keep memory flat.
public struct ByteStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    private let produce: @Sendable () async throws -> [UInt8]?

    /// `produce` returns the next non-empty chunk, or `nil` at the end.
    public init(_ produce: @escaping @Sendable () async throws -> [UInt8]?) {
        self.produce = produce
    }

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let produce: @Sendable () async throws -> [UInt8]?
        var finished = false

        public mutating func next() async throws -> [UInt8]? {
            if finished { return nil }
            while true {
                guard let chunk = try await produce() else {
                    finished = true
                    return nil
                }
                if !chunk.isEmpty { return chunk }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(produce: produce)
    }

    /// A stream of the given chunks, for tests and small bodies.
    public static func chunks(_ chunks: [[UInt8]]) -> ByteStream {
        let box = ChunkQueue(chunks)
        return ByteStream { box.pop() }
    }

    /// `count` bytes of a repeating pseudo-random pattern, in chunks of `chunkSize`.
    /// Deterministic for a given seed, so a reader can check what it gets back.
    public static func pattern(count: Int, chunkSize: Int = 1 << 16, seed: UInt64 = 1) -> ByteStream {
        let state = PatternState(remaining: count, chunkSize: chunkSize, seed: seed)
        return ByteStream { state.next() }
    }

    /// The same stream, with `observe` called on each chunk as the consumer takes it:
    /// for hashing, counting and progress without another copy.
    public func tap(_ observe: @escaping @Sendable ([UInt8]) -> Void) -> ByteStream {
        let produce = self.produce
        return ByteStream {
            let chunk = try await produce()
            if let chunk { observe(chunk) }
            return chunk
        }
    }

    /// Collects the whole stream: only for bodies known to be small.
    public func collect(limit: Int = 64 << 20) async throws -> [UInt8] {
        var out: [UInt8] = []
        for try await chunk in self {
            out.append(contentsOf: chunk)
            if out.count > limit { throw ByteStreamError.tooLarge(limit: limit) }
        }
        return out
    }
}

/// Errors of helpers over byte streams.
public enum ByteStreamError: Error, CustomStringConvertible {
    case tooLarge(limit: Int)

    public var description: String {
        switch self {
        case .tooLarge(let limit): "stream is larger than \(limit) bytes"
        }
    }
}

import Synchronization

private final class ChunkQueue: Sendable {
    private let chunks: Mutex<[[UInt8]]>
    init(_ chunks: [[UInt8]]) { self.chunks = Mutex(chunks.reversed()) }
    func pop() -> [UInt8]? { chunks.withLock { $0.popLast() } }
}

private final class PatternState: Sendable {
    private struct State {
        var remaining: Int
        var rng: SplitMix64
    }
    private let state: Mutex<State>
    private let chunkSize: Int

    init(remaining: Int, chunkSize: Int, seed: UInt64) {
        state = Mutex(State(remaining: remaining, rng: SplitMix64(seed: seed)))
        self.chunkSize = chunkSize
    }

    func next() -> [UInt8]? {
        state.withLock { s in
            guard s.remaining > 0 else { return nil }
            let n = min(chunkSize, s.remaining)
            s.remaining -= n
            return s.rng.bytes(n)
        }
    }
}

/// A small, fast, seedable generator: for test data and jitter in tests, never for secrets.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` pseudo-random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var i = 0
            while i < count {
                var word = next()
                let n = min(8, count - i)
                for j in 0..<n {
                    buffer[i + j] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                }
                i += n
            }
            initialized = count
        }
    }
}
