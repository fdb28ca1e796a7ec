/// A keyed permutation of 0..<size: a balanced Feistel network on the smallest
/// power-of-four domain that holds `size`, walking cycles until the result falls inside.
/// A bijection by construction: masking a unique number or digit string with it can never
/// make two rows equal.
///
/// The round function is SipHash-2-4 (a keyed PRF made for short inputs) under a 128-bit
/// key derived once per permutation with HMAC-SHA-256 from the anonymization key and the
/// domain: eight rounds cost a few hundred nanoseconds, not eight HMACs. On a domain whose
/// halves have at most `FeistelRoundTable.maximumHalfBits` bits (numbers of up to eight
/// digits) every round's outputs are computed once per key and domain and looked up: the
/// same values, a few nanoseconds instead of eight SipHashes. On larger domains the export
/// permutes a chunk's numbers eight side by side in vector registers (`PermutationBatch`):
/// the same values again; this type is the reference the kernel is tested against.
public struct FeistelPermutation: Sendable {
    public let size: UInt64
    let halfBits: Int
    let k0: UInt64
    let k1: UInt64
    /// The round function tabulated, for small domains (shared by every permutation of the
    /// same key and domain in the process).
    let table: FeistelRoundTable?
    static let rounds = 8

    public init(size: UInt64, key: AnonymizationKey, domain: String) {
        precondition(size >= 1)
        self.size = size
        let halfBits = Self.halfBits(size)
        self.halfBits = halfBits
        (k0, k1) = key.feistelKey(domain)
        table = halfBits <= FeistelRoundTable.maximumHalfBits ? key.feistelTable(domain, halfBits: halfBits) : nil
    }

    /// Half the bits of the smallest power of four that holds `size`.
    static func halfBits(_ size: UInt64) -> Int {
        var bits = 2
        while bits < 64 && (UInt64(1) << UInt64(bits)) < size { bits += 2 }
        return bits / 2
    }

    public func apply(_ x: UInt64) -> UInt64 {
        precondition(x < size)
        var v = x
        if let table {
            repeat { v = table.encrypt(v) } while v >= size
        } else {
            repeat { v = encrypt(v) } while v >= size
        }
        return v
    }

    /// One pass of the network, every round by SipHash (what the table holds).
    func encrypt(_ x: UInt64) -> UInt64 {
        let mask: UInt64 = halfBits >= 64 ? .max : (UInt64(1) << UInt64(halfBits)) - 1
        var left = (x >> UInt64(halfBits)) & mask
        var right = x & mask
        for round in 0..<UInt64(Self.rounds) {
            let f = Self.round(k0: k0, k1: k1, right, round) & mask
            (left, right) = (right, left ^ f)
        }
        return left << UInt64(halfBits) | right
    }

    @inline(__always)
    static func round(k0: UInt64, k1: UInt64, _ right: UInt64, _ round: UInt64) -> UInt64 {
        SipHash.hash(k0: k0, k1: k1, right, round)
    }
}

/// Every round's output for every right half of a small Feistel domain: `rounds × 2^halfBits`
/// entries of 16 bits (256 KiB at the most, for 14-bit halves), filled once by SipHash.
final class FeistelRoundTable: @unchecked Sendable {
    // @unchecked Sendable: `entries` is written only in `init`, before the table is
    // published (through the key's cache, under its lock), and only read afterwards.
    static let maximumHalfBits = 14
    /// What one key's cache of tables may hold: every digit count up to eight of a few
    /// rules (a rule's tables for one to eight digits come to about 350 KiB).
    static let cacheBytes = 8 << 20
    let halfBits: Int
    private let entries: UnsafeMutableBufferPointer<UInt16>

    init(k0: UInt64, k1: UInt64, halfBits: Int) {
        precondition(halfBits >= 1 && halfBits <= Self.maximumHalfBits)
        self.halfBits = halfBits
        let width = 1 << halfBits
        let mask = UInt64(width - 1)
        entries = .allocate(capacity: FeistelPermutation.rounds * width)
        for round in 0..<FeistelPermutation.rounds {
            for right in 0..<width {
                entries[round << halfBits | right] = UInt16(FeistelPermutation.round(k0: k0, k1: k1, UInt64(right), UInt64(round)) & mask)
            }
        }
    }

    deinit { entries.deallocate() }

    var byteCount: Int { entries.count * MemoryLayout<UInt16>.stride }

    /// `FeistelPermutation.encrypt`, by lookups.
    @inline(__always)
    func encrypt(_ x: UInt64) -> UInt64 {
        let shift = UInt64(halfBits)
        let mask = (UInt64(1) << shift) - 1
        var left = (x >> shift) & mask
        var right = x & mask
        let base = entries.baseAddress!
        for round in 0..<FeistelPermutation.rounds {
            let f = UInt64(base[round << halfBits | Int(right)])
            (left, right) = (right, left ^ f)
        }
        return left << shift | right
    }
}

/// SipHash-2-4 (Aumasson and Bernstein) of a 16-byte message (two little-endian words):
/// all the Feistel rounds need.
enum SipHash {
    @inline(__always)
    static func hash(k0: UInt64, k1: UInt64, _ a: UInt64, _ b: UInt64) -> UInt64 {
        var state = State(k0: k0, k1: k1)
        state.compress(a)
        state.compress(b)
        return state.finish(length: 16)
    }

    /// The 64-bit SipHash-2-4 of `bytes` (for the reference vectors).
    static func hash(k0: UInt64, k1: UInt64, bytes: [UInt8]) -> UInt64 {
        var state = State(k0: k0, k1: k1)
        var i = 0
        while i + 8 <= bytes.count {
            var m: UInt64 = 0
            for j in 0..<8 { m |= UInt64(bytes[i + j]) << UInt64(8 * j) }
            state.compress(m)
            i += 8
        }
        var last = UInt64(bytes.count & 0xFF) << 56
        for j in 0..<(bytes.count - i) { last |= UInt64(bytes[i + j]) << UInt64(8 * j) }
        return state.finish(last: last)
    }

    struct State {
        var v0, v1, v2, v3: UInt64
        init(k0: UInt64, k1: UInt64) {
            v0 = k0 ^ 0x736f6d6570736575
            v1 = k1 ^ 0x646f72616e646f6d
            v2 = k0 ^ 0x6c7967656e657261
            v3 = k1 ^ 0x7465646279746573
        }
        @inline(__always) mutating func round() {
            v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
            v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
        }
        @inline(__always) mutating func compress(_ m: UInt64) {
            v3 ^= m
            round(); round()
            v0 ^= m
        }
        @inline(__always) mutating func finish(length: Int) -> UInt64 { finish(last: UInt64(length & 0xFF) << 56) }
        @inline(__always) mutating func finish(last: UInt64) -> UInt64 {
            compress(last)
            v2 ^= 0xFF
            round(); round(); round(); round()
            return v0 ^ v1 ^ v2 ^ v3
        }
    }
}

extension UInt64 {
    @inline(__always) func rotatedLeft(_ n: UInt64) -> UInt64 { self << n | self >> (64 - n) }
}
