/// A keyed permutation of 0..<size: a balanced Feistel network on the smallest
/// power-of-four domain that holds `size`, walking cycles until the result falls inside.
/// A bijection by construction: masking a unique number or digit string with it can never
/// make two rows equal.
///
/// The round function is SipHash-2-4 (a keyed PRF made for short inputs) under a 128-bit
/// key derived once per permutation with HMAC-SHA-256 from the anonymization key and the
/// domain: eight rounds cost a few hundred nanoseconds, not eight HMACs.
public struct FeistelPermutation: Sendable {
    public let size: UInt64
    let halfBits: Int
    let k0: UInt64
    let k1: UInt64
    static let rounds = 8

    public init(size: UInt64, key: AnonymizationKey, domain: String) {
        precondition(size >= 1)
        self.size = size
        var bits = 2
        while bits < 64 && (UInt64(1) << UInt64(bits)) < size { bits += 2 }
        halfBits = bits / 2
        (k0, k1) = key.feistelKey(domain)
    }

    public func apply(_ x: UInt64) -> UInt64 {
        precondition(x < size)
        var v = x
        repeat { v = encrypt(v) } while v >= size
        return v
    }

    private func encrypt(_ x: UInt64) -> UInt64 {
        let mask: UInt64 = halfBits >= 64 ? .max : (UInt64(1) << UInt64(halfBits)) - 1
        var left = (x >> UInt64(halfBits)) & mask
        var right = x & mask
        for round in 0..<UInt64(Self.rounds) {
            let f = SipHash.hash(k0: k0, k1: k1, right, round) & mask
            (left, right) = (right, left ^ f)
        }
        return left << UInt64(halfBits) | right
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
