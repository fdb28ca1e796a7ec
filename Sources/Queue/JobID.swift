import Foundation

/// Time-ordered job ids: UUIDv7 (RFC 9562), 48 bits of Unix milliseconds then random
/// bits, so ids sort by creation time and need no coordination between producers.
public enum JobID {
    public static func make(now: Date = Date(), using generator: inout some RandomNumberGenerator) -> String {
        let ms = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: ms >> (8 * (5 - UInt64(i)))) }
        let random = generator.next() as UInt64
        let random2 = generator.next() as UInt64
        for i in 6..<16 {
            let word = i < 14 ? random : random2
            bytes[i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i % 8)))
        }
        return uuidString(bytes, version: 7)
    }

    /// 16 bytes as a lower-case UUID string, with the version nibble and RFC 9562 variant set.
    public static func uuidString(_ raw: [UInt8], version: UInt8) -> String {
        precondition(raw.count == 16, "a UUID has 16 bytes")
        var bytes = raw
        bytes[6] = (version << 4) | (bytes[6] & 0x0F)
        bytes[8] = 0x80 | (bytes[8] & 0x3F)
        let hex = Array(bytes.map { String(format: "%02x", $0) }.joined())
        return String(hex[0..<8]) + "-" + String(hex[8..<12]) + "-" + String(hex[12..<16]) + "-" + String(hex[16..<20]) + "-" + String(hex[20..<32])
    }

    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return make(using: &generator)
    }

    /// True for a well-formed id: 36 characters, lower-case hex and hyphens.
    public static func isValid(_ id: String) -> Bool {
        let chars = Array(id)
        guard chars.count == 36 else { return false }
        for (i, c) in chars.enumerated() {
            if [8, 13, 18, 23].contains(i) { if c != "-" { return false } } else if !c.isHexDigit || c.isUppercase { return false }
        }
        return true
    }
}
