import CZlib
import CZstd

/// A streaming compressor. It holds C state and is used by one owner at a time (the
/// lane that pulls the stream); `compress` returns what the input produced so far.
public final class Compressor: @unchecked Sendable {
    // @unchecked Sendable: the C state is only touched by the single owner, in turn.
    public let codec: Codec
    private var zstd: OpaquePointer?
    private var zlib: UnsafeMutablePointer<z_stream>?
    private let scratch: UnsafeMutableRawBufferPointer
    private var finished = false

    /// log2 of the zstd window: 1 MiB.
    public static let zstdWindowLog = 20

    public init(codec: Codec, level: Int? = nil) throws(CodecError) {
        self.codec = codec
        let level = try codec.checkedLevel(level)
        scratch = .allocate(byteCount: 1 << 17, alignment: 16)
        switch codec {
        case .zstd:
            guard let context = ZSTD_createCCtx() else { throw CodecError("cannot create a zstd compressor (out of memory)") }
            zstd = context
            ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level))
            // A frame checksum: a decompressor finds corruption even without the manifest.
            ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
            // A 1 MiB window (levels 3 and up would take 2 MiB or more, plus an input buffer
            // of the same size): memory stays small in the compressor and in every later
            // decoder, for a ratio within 0.1 % on database dumps.
            ZSTD_CCtx_setParameter(context, ZSTD_c_windowLog, Int32(Compressor.zstdWindowLog))
        case .gzip:
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard CZlib_deflateInitGzip(stream, Int32(level)) == Z_OK else {
                stream.deallocate()
                throw CodecError("cannot create a gzip compressor at level \(level)")
            }
            zlib = stream
        case .none:
            break
        }
    }

    deinit {
        if let zstd { ZSTD_freeCCtx(zstd) }
        if let zlib {
            deflateEnd(zlib)
            zlib.deallocate()
        }
        scratch.deallocate()
    }

    /// Compresses `input`; returns the compressed bytes ready so far (often fewer).
    public func compress(_ input: [UInt8]) throws(CodecError) -> [UInt8] {
        if codec == .none { return input }
        var result: Result<[UInt8], CodecError> = .success([])
        input.withUnsafeBytes { bytes in
            do throws(CodecError) { result = .success(try compress(bytes)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Compresses `input` straight from the caller's buffer (no copy of the input).
    public func compress(_ input: UnsafeRawBufferPointer) throws(CodecError) -> [UInt8] {
        if codec == .none { return Array(input) }
        // Room for the worst case up front: no growth by doubling, whose copies would
        // briefly hold the output twice (only the pages written become resident).
        var output: [UInt8] = []
        output.reserveCapacity(codec == .zstd ? ZSTD_compressBound(input.count) : Int(deflateBound(zlib, UInt(input.count))))
        try run(input, end: false, into: &output)
        return output
    }

    /// Ends the stream; returns the last compressed bytes.
    public func finish() throws(CodecError) -> [UInt8] {
        guard !finished else { return [] }
        finished = true
        if codec == .none { return [] }
        var output: [UInt8] = []
        try run(UnsafeRawBufferPointer(start: nil, count: 0), end: true, into: &output)
        return output
    }

    private func run(_ source: UnsafeRawBufferPointer, end: Bool, into output: inout [UInt8]) throws(CodecError) {
        let scratch = self.scratch
        let result: CodecError? = { () -> CodecError? in
            if let zstd {
                var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
                while true {
                    var outBuffer = ZSTD_outBuffer(dst: scratch.baseAddress, size: scratch.count, pos: 0)
                    let remaining = ZSTD_compressStream2(zstd, &outBuffer, &inBuffer, end ? ZSTD_e_end : ZSTD_e_continue)
                    if ZSTD_isError(remaining) != 0 {
                        return CodecError("zstd compression failed: \(String(cString: ZSTD_getErrorName(remaining)))")
                    }
                    output.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<outBuffer.pos]))
                    if end ? remaining == 0 : inBuffer.pos == inBuffer.size { return nil }
                }
            }
            if let zlib {
                zlib.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: Bytef.self))
                zlib.pointee.avail_in = UInt32(source.count)
                while true {
                    zlib.pointee.next_out = scratch.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    zlib.pointee.avail_out = UInt32(scratch.count)
                    let status = deflate(zlib, end ? Z_FINISH : Z_NO_FLUSH)
                    if status == Z_STREAM_ERROR { return CodecError("gzip compression failed (stream error)") }
                    let produced = scratch.count - Int(zlib.pointee.avail_out)
                    output.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<produced]))
                    if end ? status == Z_STREAM_END : (zlib.pointee.avail_in == 0 && zlib.pointee.avail_out != 0) { break }
                }
                zlib.pointee.next_in = nil
                return nil
            }
            return nil
        }()
        if let result { throw result }
    }
}
