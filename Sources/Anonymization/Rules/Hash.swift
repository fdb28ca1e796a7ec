/// `hash`: a keyed HMAC-SHA-256 of the value, formatted to the column's type.
///
/// Text becomes `prefix` + `length` base32 characters (52, the whole digest, by default:
/// distinct stays distinct up to SHA-256's collision resistance). `pattern: digits` keeps
/// every non-digit character and permutes the digits with a keyed bijection (phone and
/// id numbers keep their shape and stay unique). Integers map bijectively within their
/// 32-bit or 62-bit band; UUIDs become keyed UUIDs.
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

    public func apply(_ value: String, kind: ValueKind, key: AnonymizationKey) -> String? {
        switch kind {
        case .integer: return Self.integer(value, key: key, domain: identity)
        case .uuid: return Self.uuid(key.mac(domain: identity, value))
        default:
            if digits { return Self.permuteDigits(value, key: key, domain: identity) }
            return prefix + base32(key.mac(domain: identity, value), count: length)
        }
    }

    /// The digits of `value` permuted as one number of the same length (leading zeros
    /// kept), every other character in place: a bijection on strings of that shape.
    static func permuteDigits(_ value: String, key: AnonymizationKey, domain: String) -> String {
        var bytes = Array(value.utf8)
        var positions: [Int] = []
        for (i, b) in bytes.enumerated() where b >= 0x30 && b <= 0x39 { positions.append(i) }
        guard !positions.isEmpty else { return value }
        // Up to 18 digits per block (UInt64); longer runs are permuted block by block.
        var start = 0
        while start < positions.count {
            let block = positions[start..<min(positions.count, start + 18)]
            var number: UInt64 = 0
            var size: UInt64 = 1
            for p in block {
                number = number * 10 + UInt64(bytes[p] - 0x30)
                size *= 10
            }
            var rest = FeistelPermutation(size: size, key: key, domain: "\(domain):\(block.count):\(start)").apply(number)
            for p in block.reversed() {
                bytes[p] = UInt8(0x30 + rest % 10)
                rest /= 10
            }
            start += 18
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A bijection of the integers: 0..<2^31 onto itself, 2^31..<2^62 onto itself, and the
    /// negative bands likewise; beyond ±2^62 the value is kept (none of those in practice).
    static func integer(_ value: String, key: AnonymizationKey, domain: String) -> String? {
        guard let v = Int64(value) else { return nil }
        let magnitude = v < 0 ? UInt64(-(v + 1)) : UInt64(v)
        let small: UInt64 = 1 << 31, large: UInt64 = 1 << 62
        let mapped: UInt64
        if magnitude < small {
            mapped = FeistelPermutation(size: small, key: key, domain: domain + ":31").apply(magnitude)
        } else if magnitude < large {
            mapped = small + FeistelPermutation(size: large - small, key: key, domain: domain + ":62").apply(magnitude - small)
        } else {
            return value
        }
        return String(v < 0 ? -Int64(mapped) - 1 : Int64(mapped))
    }

    static func uuid(_ digest: [UInt8]) -> String {
        var b = Array(digest.prefix(16))
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        let h = hex(b)
        let c = Array(h)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
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
