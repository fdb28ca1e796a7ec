/// A masking rule bound to a key and a column kind, for masking many values: what can be
/// derived once (keyed hash states with their domain absorbed, permutation keys, lower-
/// cased name lists) is, and values go in and out as UTF-8 bytes, never as `String`s.
///
/// The export masks through these; `MaskingRule.apply` is the same function on strings
/// (for rules with a prepared form, `apply` calls it), so the two never disagree.
public protocol PreparedRule: Sendable {
    /// Appends the masked form of a non-NULL original (its decoded UTF-8 bytes) to `out`;
    /// false (and nothing appended) when the masked value is NULL.
    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool
    /// True when the masked bytes hold a tab, newline, carriage return or backslash only if
    /// the original did: a COPY field without escapes then needs none after masking.
    var addsNoControl: Bool { get }
}

extension PreparedRule {
    public var addsNoControl: Bool { false }
}

extension MaskingRule {
    /// A rule without a prepared form masks through `apply`.
    public func prepared(kind: ValueKind, key: AnonymizationKey) -> any PreparedRule {
        StringPrepared(rule: self, kind: kind, key: key)
    }
}

extension PreparedRule {
    /// The masked value of a non-NULL original as a string (nil for NULL).
    public func apply(_ value: String) -> String? {
        var value = value
        var out: [UInt8] = []
        let present = value.withUTF8 { mask(UnsafeRawBufferPointer($0), into: &out) }
        return present ? String(decoding: out, as: UTF8.self) : nil
    }
}

/// Any rule, through its `apply`: one `String` in and out per value.
final class StringPrepared: PreparedRule {
    let rule: any MaskingRule
    let kind: ValueKind
    let key: AnonymizationKey

    init(rule: any MaskingRule, kind: ValueKind, key: AnonymizationKey) {
        self.rule = rule
        self.kind = kind
        self.key = key
    }

    func mask(_ value: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard let masked = rule.apply(String(decoding: value, as: UTF8.self), kind: kind, key: key) else { return false }
        out += masked.utf8
        return true
    }
}

// MARK: - Bytes

enum Bytes {
    /// Appends the first `count` characters of the lower-case RFC 4648 base32 text of
    /// `bytes` (no padding): what `base32(_:count:)` returns, without a `String`.
    @inline(__always)
    static func appendBase32(_ bytes: UnsafeRawBufferPointer, count: Int, into out: inout [UInt8]) {
        let wanted = min(count, (bytes.count * 8 + 4) / 5)
        guard wanted > 0 else { return }
        let letters: StaticString = "abcdefghijklmnopqrstuvwxyz234567"
        let from = out.count
        out.append(contentsOf: repeatElement(0, count: wanted))
        letters.withUTF8Buffer { alphabet in
            out.withUnsafeMutableBufferPointer { all in
                let target = all.baseAddress! + from
                var buffer = 0, bits = 0, n = 0, i = 0
                while n < wanted {
                    if bits < 5 {
                        if i < bytes.count {
                            buffer = (buffer << 8 | Int(bytes[i])) & 0xFFFF
                            i += 1
                            bits += 8
                        } else {
                            target[n] = alphabet[(buffer << (5 - bits)) & 31]
                            n += 1
                            break
                        }
                    }
                    target[n] = alphabet[(buffer >> (bits - 5)) & 31]
                    n += 1
                    bits -= 5
                }
            }
        }
    }

    /// A 64-bit number from 8 bytes of a digest, big-endian (as `word(_:at:)`).
    @inline(__always)
    static func word(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }

    /// A copy of `bytes` in storage of its own (an array copy shares its buffer).
    static func fresh(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
            count = buffer.initialize(fromContentsOf: bytes)
        }
    }

    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.allSatisfy { $0 < 0x80 }
    }

    /// Appends the decimal digits of `n`.
    static func appendDecimal(_ n: Int64, into out: inout [UInt8]) {
        if n < 0 { out.append(0x2D) }
        var magnitude = n.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(0x30 + magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }
}
