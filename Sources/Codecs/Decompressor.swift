import CZlib
import CZstd

/// A streaming decompressor that hands its output on in pieces of at most `outputChunk`
/// bytes, however well the input compresses: memory stays flat even at 100:1.
/// One owner at a time.
public final class Decompressor: @unchecked Sendable {
    // @unchecked Sendable: the C state is only touched by the single owner, in turn.
    public let codec: Codec
    private var zstd: OpaquePointer?
    private var zlib: UnsafeMutablePointer<z_stream>?
    private let scratch: UnsafeMutableRawBufferPointer
    /// zstd: 0 once a frame is complete; gzip: whether the last member ended.
    private var zstdPending = 0
    private var gzipEnded = true
    private var sawInput = false

    public init(codec: Codec, outputChunk: Int = 1 << 20) throws(CodecError) {
        self.codec = codec
        scratch = .allocate(byteCount: outputChunk, alignment: 16)
        switch codec {
        case .zstd:
            guard let context = ZSTD_createDCtx() else { throw CodecError("cannot create a zstd decompressor (out of memory)") }
            zstd = context
        case .gzip:
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard CZlib_inflateInitGzip(stream) == Z_OK else {
                stream.deallocate()
                throw CodecError("cannot create a gzip decompressor")
            }
            zlib = stream
        case .none:
            break
        }
    }

    deinit {
        if let zstd { ZSTD_freeDCtx(zstd) }
        if let zlib {
            inflateEnd(zlib)
            zlib.deallocate()
        }
        scratch.deallocate()
    }

    /// Decompresses `input`, calling `emit` with each piece of output.
    public func decompress(_ input: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !input.isEmpty else { return }
        sawInput = true
        if codec == .none {
            try input.withUnsafeBytes { try emit($0) }
            return
        }
        let scratch = self.scratch
        try input.withUnsafeBytes { source in
            if let zstd {
                var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
                while true {
                    var outBuffer = ZSTD_outBuffer(dst: scratch.baseAddress, size: scratch.count, pos: 0)
                    let hint = ZSTD_decompressStream(zstd, &outBuffer, &inBuffer)
                    if ZSTD_isError(hint) != 0 {
                        throw CodecError("the data is not valid zstd: \(String(cString: ZSTD_getErrorName(hint)))")
                    }
                    zstdPending = hint
                    if outBuffer.pos > 0 { try emit(UnsafeRawBufferPointer(rebasing: scratch[0..<outBuffer.pos])) }
                    // Done with this input when it is consumed and either the frame ended
                    // (0: decoded and flushed; another call would start a new frame) or
                    // the output buffer was not filled (nothing more is pending).
                    if inBuffer.pos == inBuffer.size && (hint == 0 || outBuffer.pos < outBuffer.size) { return }
                }
            }
            if let zlib {
                var offset = 0
                while offset < source.count || zlib.pointee.avail_out == 0 {
                    if gzipEnded {
                        // A new gzip member (a concatenation of members is one stream),
                        // only if there is input for it.
                        guard offset < source.count else { break }
                        if !sawGzipMember { sawGzipMember = true } else { inflateReset(zlib) }
                        gzipEnded = false
                    }
                    zlib.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self))
                    zlib.pointee.avail_in = UInt32(source.count - offset)
                    zlib.pointee.next_out = scratch.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    zlib.pointee.avail_out = UInt32(scratch.count)
                    let status = inflate(zlib, Z_NO_FLUSH)
                    let consumed = (source.count - offset) - Int(zlib.pointee.avail_in)
                    offset += consumed
                    let produced = scratch.count - Int(zlib.pointee.avail_out)
                    switch status {
                    case Z_OK, Z_BUF_ERROR: break
                    case Z_STREAM_END: gzipEnded = true
                    default:
                        let reason = zlib.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
                        throw CodecError("the data is not valid gzip: \(reason)")
                    }
                    if produced > 0 { try emit(UnsafeRawBufferPointer(rebasing: scratch[0..<produced])) }
                    if consumed == 0 && produced == 0 { break }
                }
                zlib.pointee.next_in = nil
            }
        }
    }

    private var sawGzipMember = false

    /// Checks that the stream ended at the end of a frame: a truncated input is an error.
    public func finish() throws(CodecError) {
        switch codec {
        case .none: return
        case .zstd:
            if !sawInput { throw CodecError("the zstd data is empty") }
            if zstdPending != 0 { throw CodecError("the zstd data ends in the middle of a frame (truncated)") }
        case .gzip:
            if !sawInput { throw CodecError("the gzip data is empty") }
            if !gzipEnded { throw CodecError("the gzip data ends in the middle of a member (truncated)") }
        }
    }
}
