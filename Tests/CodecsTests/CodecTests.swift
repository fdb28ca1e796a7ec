import Codecs
import DBQSupport
import Testing

@Suite struct CodecTests {
    static func roundTrip(_ codec: Codec, _ input: [[UInt8]], level: Int? = nil) throws -> [UInt8] {
        let compressor = try Compressor(codec: codec, level: level)
        var stored: [UInt8] = []
        for chunk in input { stored += try compressor.compress(chunk) }
        stored += try compressor.finish()
        let decompressor = try Decompressor(codec: codec, outputChunk: 4096)
        var out: [UInt8] = []
        // Feed in odd-sized pieces: frame boundaries must not matter.
        var i = 0
        while i < stored.count {
            let n = min(777, stored.count - i)
            try decompressor.decompress(Array(stored[i..<i + n])) { out += $0 }
            i += n
        }
        try decompressor.finish()
        return out
    }

    @Test("compressing straight from a buffer gives the same stream as from arrays", arguments: Codec.allCases)
    func fromBuffer(_ codec: Codec) throws {
        var rng = SplitMix64(seed: 11)
        let chunks = [rng.bytes(200_000), [UInt8](repeating: 9, count: 300_000), [], rng.bytes(5)]
        let fromArrays = try Compressor(codec: codec)
        let fromBuffers = try Compressor(codec: codec)
        var a: [UInt8] = []
        var b: [UInt8] = []
        for chunk in chunks {
            a += try fromArrays.compress(chunk)
            b += try chunk.withUnsafeBytes { try fromBuffers.compress($0) }
        }
        a += try fromArrays.finish()
        b += try fromBuffers.finish()
        #expect(a == b)
        let decompressor = try Decompressor(codec: codec, outputChunk: 4096)
        var out: [UInt8] = []
        try decompressor.decompress(b) { out += $0 }
        try decompressor.finish()
        #expect(out == chunks.flatMap { $0 })
    }

    @Test(arguments: Codec.allCases)
    func roundTripsRandomAndRepetitiveData(_ codec: Codec) throws {
        var rng = SplitMix64(seed: 7)
        let random = rng.bytes(300_000)
        let repetitive = [UInt8](repeating: 65, count: 2_000_000)
        let input = [random, repetitive, [], Array(random.prefix(10))]
        #expect(try Self.roundTrip(codec, input) == input.flatMap { $0 })
    }

    @Test(arguments: [Codec.zstd, .gzip])
    func highRatioOutputComesInBoundedPieces(_ codec: Codec) throws {
        let compressor = try Compressor(codec: codec)
        var stored = try compressor.compress([UInt8](repeating: 0, count: 20 << 20))
        stored += try compressor.finish()
        #expect(stored.count < 1 << 20)
        let decompressor = try Decompressor(codec: codec, outputChunk: 64 << 10)
        var largest = 0
        var total = 0
        try decompressor.decompress(stored) { piece in
            largest = max(largest, piece.count)
            total += piece.count
        }
        try decompressor.finish()
        #expect(total == 20 << 20)
        #expect(largest <= 64 << 10)
    }

    @Test(arguments: [Codec.zstd, .gzip])
    func truncatedAndCorruptInputIsAnError(_ codec: Codec) throws {
        var rng = SplitMix64(seed: 9)
        let compressor = try Compressor(codec: codec)
        var stored = try compressor.compress(rng.bytes(200_000) + [UInt8](repeating: 1, count: 200_000))
        stored += try compressor.finish()

        let truncated = try Decompressor(codec: codec)
        try truncated.decompress(Array(stored.prefix(stored.count / 2))) { _ in }
        #expect(throws: CodecError.self) { try truncated.finish() }

        var flipped = stored
        flipped[stored.count * 3 / 4] ^= 0x40
        let corrupt = try Decompressor(codec: codec)
        #expect(throws: (any Error).self) {
            try corrupt.decompress(flipped) { _ in }
            try corrupt.finish()
        }
    }

    @Test func levelsAndNamesAreChecked() throws {
        #expect(try Codec(parsing: "ZSTD") == .zstd)
        #expect(throws: CodecError("unknown codec 'lz4'; use one of: zstd, gzip, none")) { try Codec(parsing: "lz4") }
        #expect(throws: CodecError("gzip level 12 is out of range; use 1 to 9")) { try Codec.gzip.checkedLevel(12) }
        #expect(try Codec.zstd.checkedLevel(nil) == 1)
        #expect(try Codec.none.checkedLevel(5) == 0)
    }
}
