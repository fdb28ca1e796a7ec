/// `hash`: a keyed HMAC-SHA-256 of the value, formatted to the column's type.
///
/// Text becomes `prefix` + `length` base32 characters (52, the whole digest, by default:
/// distinct stays distinct up to SHA-256's collision resistance). `pattern: digits` keeps
/// every non-digit character and permutes the digits with a keyed bijection (phone and
/// id numbers keep their shape and stay unique). Integers map bijectively within their
/// bit-length band (never past twice the original, smallints stay smallints); UUIDs become keyed UUIDs.
public struct Hash: MaskingRule {
    public static let name = "hash"
    public static let summary = "keyed HMAC-SHA-256, formatted to the column's type (digits keep their shape)"
    public static let accepts: Set<ValueKind> = [.text, .integer, .uuid]
    let length: Int
    let prefix: String
    let digits: Bool

    public init(parameters: [String: String], path: String) throws(AnonymizationError) {
        try Self.only(["length", "prefix", "pattern"], parameters, path: path)
        length = try Self.int(parameters, "length", default: 52, in: 8...52, path: path)
        prefix = parameters["prefix"] ?? ""
        switch parameters["pattern"] {
        case nil: digits = false
        case "digits"?: digits = true
        case let other?: throw AnonymizationError("\(path).pattern: '\(other)' is not a pattern; the one pattern is 'digits'")
        }
    }

    public var identity: String { digits ? "hash:digits" : "hash:\(length):\(prefix)" }
    public var keepsDistinct: Bool { digits || length == 52 }

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) throws(AnonymizationError) -> String? {
        try prepared(kind: kind, key: key).apply(value)
    }

    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        switch kind {
        case .integer: return IntegerHash(key: key, domain: identity)
        case .uuid: return UUIDHash(hash: key.keyedHash(domain: identity))
        default:
            if digits { return DigitPermutation(key: key, domain: identity) }
            return TextHash(hash: key.keyedHash(domain: identity), prefix: Array(prefix.utf8), length: length)
        }
    }

    static func uuid(_ digest: [UInt8]) -> String {
        var out: [UInt8] = []
        digest.withUnsafeBytes { UUIDHash.appendUUID($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// `hash` on text: `prefix` and `length` base32 characters of the keyed digest.
final class TextHash: PreparedRule {
    var addsNoControl: Bool { true }
    let hash: KeyedHash
    let prefix: [UInt8]
    let length: Int

    init(hash: KeyedHash, prefix: [UInt8], length: Int) {
        self.hash = hash
        self.prefix = prefix
        self.length = length
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        out += prefix
        hash.digest(value).withUnsafeBytes { Bytes.appendBase32($0, count: length, into: &out) }
        return true
    }
}

/// `hash` on a uuid column: a version-4-shaped UUID from the keyed digest.
final class UUIDHash: PreparedRule {
    var addsNoControl: Bool { true }
    let hash: KeyedHash

    init(hash: KeyedHash) { self.hash = hash }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        hash.digest(value).withUnsafeBytes { Self.appendUUID($0, into: &out) }
        return true
    }

    static func appendUUID(_ digest: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let hexDigits: StaticString = "0123456789abcdef"
        hexDigits.withUTF8Buffer { hex in
            for i in 0..<16 {
                if i == 4 || i == 6 || i == 8 || i == 10 { out.append(0x2D) }
                var b = digest[i]
                if i == 6 { b = (b & 0x0F) | 0x40 }
                if i == 8 { b = (b & 0x3F) | 0x80 }
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            }
        }
    }
}

/// `hash` on an integer column: a bijection of each band onto itself, for the non-negative
/// values and the negative ones alike — magnitudes 0..<2^15 (a `smallint` stays a
/// `smallint`), then one band per bit length, 2^k..<2^(k+1) for k = 15…62. Every 64-bit
/// integer is mapped, none kept, and a hashed value is never more than twice the largest
/// original (or 2^15): an `integer` serial key hashed stays far from its type's end, and
/// the import's sequence fix-up leaves the sequence most of its range. Not an integer:
/// refused (the export stops).
final class IntegerHash: PreparedRule {
    var addsNoControl: Bool { true }
    /// The lowest band's bits: 0..<2^15 is one band.
    static let lowBits = 15
    /// `bands[0]` permutes 0..<2^15, `bands[k - 14]` permutes 2^k..<2^(k+1).
    let bands: [FeistelPermutation]

    init(key: AnonymizationKey, domain: String) {
        bands = [FeistelPermutation(size: 1 << UInt64(Self.lowBits), key: key, domain: domain + ":band:0")]
            + (Self.lowBits...62).map { k in FeistelPermutation(size: 1 << UInt64(k), key: key, domain: domain + ":band:\(k)") }
    }

    /// The band of a magnitude: 0 below 2^15, else its bit length less 15.
    @inline(__always)
    static func band(_ magnitude: UInt64) -> (index: Int, base: UInt64) {
        let bits = 64 - magnitude.leadingZeroBitCount
        guard bits > lowBits else { return (0, 0) }
        return (bits - lowBits, UInt64(1) << UInt64(bits - 1))
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(AnonymizationError) -> Bool {
        guard let v = Int64(String(decoding: value, as: UTF8.self)) else { throw .unreadable(Hash.name, as: "an integer") }
        let magnitude = v < 0 ? UInt64(-(v + 1)) : UInt64(v)
        let (index, base) = Self.band(magnitude)
        let mapped = base + bands[index].apply(magnitude - base)
        Bytes.appendDecimal(v < 0 ? -Int64(mapped) - 1 : Int64(mapped), into: &out)
        return true
    }
}

/// `hash` with `pattern: digits`: the value with its digits permuted as one number per
/// run of 18 (leading zeros kept), every other byte in place.
final class DigitPermutation: PreparedRule {
    var addsNoControl: Bool { true }
    let key: AnonymizationKey
    let domain: String
    /// The permutations of the first 18 digits, by how many digits there are (1…18).
    let first: [FeistelPermutation]

    init(key: AnonymizationKey, domain: String) {
        self.key = key
        self.domain = domain
        var size: UInt64 = 1
        first = (0...18).map { count in
            defer { size *= 10 }
            return FeistelPermutation(size: size, key: key, domain: "\(domain):\(count):0")
        }
    }

    func permutation(count: Int, start: Int) -> FeistelPermutation {
        if start == 0 { return first[count] }
        var size: UInt64 = 1
        for _ in 0..<count { size *= 10 }
        return FeistelPermutation(size: size, key: key, domain: "\(domain):\(count):\(start)")
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        var batch = PermutationBatch(deferring: false)
        return mask(value, into: &out, batch: &batch)
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8], batch: inout PermutationBatch) -> Bool {
        let base = out.count
        out.append(contentsOf: value)
        out.withUnsafeMutableBytes { permute(UnsafeMutableRawBufferPointer(rebasing: $0[base...]), at: base, batch: &batch) }
        return true
    }

    /// The digits of `text` permuted where they stand, in runs of 18: each run's digits are
    /// read as one number, permuted, and written back over the same positions (now, or
    /// when `batch` runs: `text` starts at `offset` in the buffer it runs on).
    func permute(_ text: UnsafeMutableRawBufferPointer, at offset: Int, batch: inout PermutationBatch) {
        var count = 0, start = 0, lastDigit = 0
        var number: UInt64 = 0
        for i in 0..<text.count {
            let digit = text[i] &- 0x30
            guard digit < 10 else { continue }
            number = number &* 10 &+ UInt64(digit)
            count += 1
            lastDigit = i
            guard count == 18 else { continue }
            write(number, count: count, start: start, endingAt: i, in: text, offset: offset, batch: &batch)
            start += count
            count = 0
            number = 0
        }
        if count > 0 { write(number, count: count, start: start, endingAt: lastDigit, in: text, offset: offset, batch: &batch) }
    }

    /// The run of `count` digits ending at `last` (non-digits between them skipped), from
    /// the number's permutation.
    @inline(__always)
    private func write(_ number: UInt64, count: Int, start: Int, endingAt last: Int, in text: UnsafeMutableRawBufferPointer,
                       offset: Int, batch: inout PermutationBatch) {
        if start == 0 {
            // The first run's permutation read in place: a copy would count a reference to
            // its round table per value.
            batch.permute(number, count: count, with: first[count], endingAt: last, in: text, offset: offset)
        } else {
            batch.permute(number, count: count, with: permutation(count: count, start: start), endingAt: last, in: text, offset: offset)
        }
    }
}

/// Lower-case RFC 4648 base32 without padding: 52 characters for 32 bytes.
func base32(_ bytes: [UInt8]) -> String { base32(bytes, count: (bytes.count * 8 + 4) / 5) }

/// The first `count` characters of the base32 text of `bytes`, built without the rest.
func base32(_ bytes: [UInt8], count: Int) -> String {
    let alphabet: StaticString = "abcdefghijklmnopqrstuvwxyz234567"
    return String(unsafeUninitializedCapacity: count) { out in
        var buffer = 0, bits = 0, n = 0
        alphabet.withUTF8Buffer { letters in
            for byte in bytes where n < count {
                buffer = (buffer << 8 | Int(byte)) & 0xFFFF
                bits += 8
                while bits >= 5 && n < count {
                    out[n] = letters[(buffer >> (bits - 5)) & 31]
                    n += 1
                    bits -= 5
                }
            }
            if bits > 0 && n < count {
                out[n] = letters[(buffer << (5 - bits)) & 31]
                n += 1
            }
        }
        return n
    }
}
