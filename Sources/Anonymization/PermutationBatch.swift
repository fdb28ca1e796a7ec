import FeistelKernel

/// Numbers whose permutation is put off until a chunk of rows has been masked, then run
/// eight side by side (`dbq_feistel_permute`) and written over their digits.
///
/// One number's Feistel rounds are serial: on a domain too large for a round table
/// (numbers of nine digits or more, a phone number with its country code) one permutation
/// is some twenty SipHashes in a row, and leaves most of the core idle. Eight numbers in
/// the lanes of one vector cost about what one does. The output is the same: the numbers'
/// digits are written where they stood, by the same permutation, only later.
///
/// A batch that defers records where each number's last digit is in the caller's output
/// buffer; the caller runs the batch before that buffer is read or its bytes move.
public struct PermutationBatch {
    /// False: every number is permuted at once (one value at a time, as before).
    let defers: Bool
    private var keys: [FeistelPermutation.Key] = []
    private var pending: [Pending] = []

    struct Pending {
        var key: Int
        var count: Int
        /// Where the number's last digit is in the output buffer.
        var last: Int
        var value: UInt64
    }

    /// `deferring`: whether permutations may wait for `run(on:)`.
    public init(deferring: Bool) {
        defers = deferring
    }

    /// True when nothing waits.
    public var isEmpty: Bool { pending.isEmpty }

    /// Writes the `count`-digit image of `number` under `permutation` over the digits of
    /// `text` that end at `last` (non-digits between them skipped): now, or when the
    /// batch runs (`text` starts at `offset` in the output buffer).
    @inline(__always)
    mutating func permute(_ number: UInt64, count: Int, with permutation: FeistelPermutation,
                          endingAt last: Int, in text: UnsafeMutableRawBufferPointer, offset: Int) {
        guard defers && permutation.table == nil else {
            Self.writeDigits(permutation.apply(number), count: count, endingAt: last, in: text)
            return
        }
        let key = permutation.key
        let index: Int
        if let k = keys.lastIndex(of: key) {
            index = k
        } else {
            keys.append(key)
            index = keys.count - 1
        }
        pending.append(Pending(key: index, count: count, last: offset + last, value: number))
    }

    /// Every waiting number permuted, eight at a time, and written over its digits in `out`.
    public mutating func run(on out: inout [UInt8]) {
        guard !pending.isEmpty else { return }
        var values: [UInt64] = []
        values.reserveCapacity(pending.count)
        out.withUnsafeMutableBytes { buffer in
            for (k, key) in keys.enumerated() {
                values.removeAll(keepingCapacity: true)
                for p in pending where p.key == k { values.append(p.value) }
                values.withUnsafeMutableBufferPointer { v in
                    _ = dbq_feistel_permute(key.k0, key.k1, UInt32(key.halfBits), key.size, v.baseAddress, v.count, PermutationBatch.level)
                }
                var i = 0
                for p in pending where p.key == k {
                    Self.writeDigits(values[i], count: p.count, endingAt: p.last, in: buffer)
                    i += 1
                }
            }
        }
        pending.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
    }

    /// The best vector unit this CPU has (what `run(on:)` uses).
    public static let level = dbq_feistel_best_level()

    /// The `count` low digits of `value` written over the digits of `text` that end at
    /// `last`, right to left, skipping whatever is not a digit.
    @inline(__always)
    static func writeDigits(_ value: UInt64, count: Int, endingAt last: Int, in text: UnsafeMutableRawBufferPointer) {
        var rest = value, k = last, left = count
        while left > 0 {
            if text[k] &- 0x30 < 10 {
                text[k] = UInt8(0x30 + rest % 10)
                rest /= 10
                left -= 1
            }
            k -= 1
        }
    }
}

extension FeistelPermutation {
    /// What the vector kernel needs of a permutation.
    struct Key: Equatable {
        var k0: UInt64
        var k1: UInt64
        var halfBits: Int
        var size: UInt64
    }

    var key: Key { Key(k0: k0, k1: k1, halfBits: halfBits, size: size) }
}
