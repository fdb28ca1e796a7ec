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
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // variant 10
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
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
