/// A keyed permutation of 0..<size: a balanced Feistel network with HMAC-SHA-256 rounds
/// on the smallest power-of-four domain that holds `size`, walking cycles until the
/// result falls inside. A bijection by construction: masking a unique number or digit
/// string with it can never make two rows equal.
public struct FeistelPermutation: Sendable {
    public let size: UInt64
    let halfBits: Int
    let key: AnonymizationKey
    let domain: String
    static let rounds = 8

    public init(size: UInt64, key: AnonymizationKey, domain: String) {
        precondition(size >= 1)
        self.size = size
        self.key = key
        self.domain = domain
        var bits = 2
        while bits < 64 && (UInt64(1) << UInt64(bits)) < size { bits += 2 }
        halfBits = bits / 2
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
        for round in 0..<Self.rounds {
            var input: [UInt8] = [UInt8(round)]
            for i in (0..<8).reversed() { input.append(UInt8(truncatingIfNeeded: right >> UInt64(i * 8))) }
            let f = word(key.mac(domain: domain, input)) & mask
            (left, right) = (right, left ^ f)
        }
        return left << UInt64(halfBits) | right
    }
}
