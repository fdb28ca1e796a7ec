import Codecs
import DBQSupport

/// Compresses a byte stream as it is read, counting the bytes before compression.
public final class CompressingPipe: @unchecked Sendable {
    // @unchecked Sendable: pulled by one consumer, one chunk at a time.
    private var source: ByteStream.AsyncIterator
    private let compressor: Compressor
    private var finished = false
    public private(set) var rawBytes: Int64 = 0

    public init(source: ByteStream, compressor: Compressor) {
        self.source = source.makeAsyncIterator()
        self.compressor = compressor
    }

    public func stream() -> ByteStream {
        ByteStream { [self] in
            while !finished {
                var iterator = source
                let chunk = try await iterator.next()
                source = iterator
                guard let chunk else {
                    finished = true
                    let tail = try compressor.finish()
                    return tail.isEmpty ? nil : tail
                }
                rawBytes += Int64(chunk.count)
                let out = try compressor.compress(chunk)
                if !out.isEmpty { return out }
            }
            return nil
        }
    }
}
