import CCryptoSHA
import Crypto
import _CryptoExtras
import Foundation
import Synchronization

/// The secret every transform is keyed with. It comes from the environment
/// (`DBQ_ANONYMIZE_KEY`) or `dbq.yaml`, never from a policy or a payload; a manifest
/// records only its fingerprint.
public struct AnonymizationKey: Sendable {
    private let box: KeyBox

    public static let environmentVariable = "DBQ_ANONYMIZE_KEY"
    public static let minimumLength = 16

    /// Bits the key's characters carry by their own frequencies (Shannon), at least.
    public static let minimumBits = 64.0
    /// Distinct bytes a key has at least.
    public static let minimumDistinct = 10

    public init(_ secret: String) throws(AnonymizationError) {
        guard secret.utf8.count >= Self.minimumLength else {
            throw AnonymizationError("the anonymization key is \(secret.utf8.count) bytes; use at least \(Self.minimumLength) (e.g. openssl rand -hex 32) in \(Self.environmentVariable)")
        }
        let (bits, distinct) = Self.strength(secret)
        guard bits >= Self.minimumBits, distinct >= Self.minimumDistinct else {
            throw AnonymizationError(String(format: "the anonymization key is too predictable (%d distinct characters, about %.0f bits by their frequencies; at least %d and %.0f are needed): anyone holding masked data could try guesses. Use a random key (openssl rand -hex 32) in \(Self.environmentVariable)", distinct, bits, Self.minimumDistinct, Self.minimumBits))
        }
        box = KeyBox(SymmetricKey(data: Array(secret.utf8)))
    }

    /// Shannon entropy of the key's bytes times its length, and its distinct bytes: a floor
    /// that refuses `aaaa…` and `passwordpassword`, not a proof of randomness.
    static func strength(_ secret: String) -> (bits: Double, distinct: Int) {
        var counts: [UInt8: Int] = [:]
        for byte in secret.utf8 { counts[byte, default: 0] += 1 }
        let n = Double(secret.utf8.count)
        let perByte = counts.values.reduce(0.0) { sum, c in let p = Double(c) / n; return sum - p * log2(p) }
        return (perByte * n, counts.count)
    }

    /// The key from `DBQ_ANONYMIZE_KEY`, or an error saying how to set it.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(AnonymizationError) -> AnonymizationKey {
        guard let secret = environment[environmentVariable], !secret.isEmpty else {
            throw AnonymizationError("no anonymization key: set \(environmentVariable) on the worker (at least \(minimumLength) bytes, e.g. openssl rand -hex 32); it never goes in a policy or a payload")
        }
        return try AnonymizationKey(secret)
    }

    /// Names the key without letting a guess be tested cheaply: `v2:<salt>:<digest>`, the
    /// first 8 bytes of PBKDF2-HMAC-SHA-256 of the key over a random 16-byte salt, 210,000
    /// rounds (OWASP's floor; about a tenth of a second once per export). `matches` tells
    /// whether a key made a fingerprint; the salt makes two exports' fingerprints differ.
    public func fingerprint(salt: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }) -> String {
        "v2:" + hex(salt) + ":" + hex(box.derived(salt: salt))
    }

    /// Whether this key made `fingerprint` (v2, or the v1 HMAC form older manifests hold);
    /// nil when the text is neither.
    public func matches(fingerprint: String) -> Bool? {
        let parts = fingerprint.split(separator: ":").map(String.init)
        if parts.count == 3, parts[0] == "v2", let salt = unhex(parts[1]), salt.count == 16 {
            return hex(box.derived(salt: salt)) == parts[2]
        }
        if parts.count == 1, fingerprint.count == 16 {
            return String(hex(mac(domain: "dbq:fingerprint", Array("v1".utf8))).prefix(16)) == fingerprint
        }
        return nil
    }

    /// HMAC-SHA-256 of `value` under this key, separated by `domain` (a rule's identity):
    /// the same (domain, value) always gives the same 32 bytes.
    public func mac(domain: String, _ value: [UInt8]) -> [UInt8] {
        value.withUnsafeBytes { box.mac(domain: domain, $0) }
    }

    /// The 128-bit SipHash key of a Feistel permutation's domain: HMAC-derived once per
    /// domain and remembered (a rule has a handful of domains; a million values share them).
    func feistelKey(_ domain: String) -> (UInt64, UInt64) {
        if let known = box.feistelKeys.withLock({ $0[domain] }) { return known }
        let derived = mac(domain: "dbq:feistel", domain)
        let pair = (word(derived, at: 0), word(derived, at: 8))
        box.feistelKeys.withLock { keys in
            if keys.count >= 4_096 { keys.removeAll() }
            keys[domain] = pair
        }
        return pair
    }

    /// The round table of a small Feistel domain: built once per domain and shared by
    /// every thread (a few milliseconds for the largest; the cache holds at most
    /// `FeistelRoundTable.cacheBytes`).
    func feistelTable(_ domain: String, halfBits: Int) -> FeistelRoundTable {
        let name = "\(domain)#\(halfBits)"
        if let known = box.feistelTables.withLock({ $0[name] }) { return known }
        let (k0, k1) = feistelKey(domain)
        let table = FeistelRoundTable(k0: k0, k1: k1, halfBits: halfBits)
        return box.feistelTables.withLock { tables in
            if let raced = tables[name] { return raced }
            if tables.values.reduce(0, { $0 + $1.byteCount }) + table.byteCount > FeistelRoundTable.cacheBytes { tables.removeAll() }
            tables[name] = table
            return table
        }
    }

    public func mac(domain: String, _ value: String) -> [UInt8] {
        var value = value
        return value.withUTF8 { box.mac(domain: domain, UnsafeRawBufferPointer($0)) }
    }

    /// `mac(domain:_:)` for many values of one domain: the domain is absorbed once.
    public func keyedHash(domain: String) -> KeyedHash { box.keyedHash(domain: domain) }
}

/// HMAC-SHA-256 under the anonymization key for one domain, the key's pads and the domain
/// already absorbed: a value costs its own blocks and the outer block only, and no
/// allocation (the SHA-256 states are plain structs, copied per value).
public struct KeyedHash: Sendable {
    fileprivate var inner: SHA256_CTX
    fileprivate var outer: SHA256_CTX

    /// HMAC(key, domain ‖ 0x00 ‖ value): the bytes `AnonymizationKey.mac(domain:_:)` returns.
    @inline(__always)
    public func digest(_ value: UnsafeRawBufferPointer) -> Digest32 {
        var h = inner
        var d = Digest32()
        if value.count > 0 { SHA256_Update(&h, value.baseAddress, value.count) }
        d.withUnsafeMutableBytes { SHA256_Final($0.baseAddress!.assumingMemoryBound(to: UInt8.self), &h) }
        var o = outer
        d.withUnsafeMutableBytes { raw in
            SHA256_Update(&o, raw.baseAddress, 32)
            SHA256_Final(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &o)
        }
        return d
    }
}

/// 32 bytes of digest, held inline.
public struct Digest32: Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = words
        return try Swift.withUnsafeBytes(of: &copy, body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeMutableBytes(of: &words, body)
    }
}

/// The key, shared by every copy of an `AnonymizationKey`, with HMAC's inner and outer
/// states already keyed (RFC 2104). The result is HMAC-SHA-256, byte for byte (tested
/// against swift-crypto's `HMAC`).
private final class KeyBox: Sendable {
    private let hash: KeyedHash
    /// Feistel domain → derived key (bounded; see `AnonymizationKey.feistelKey`).
    let feistelKeys = Mutex<[String: (UInt64, UInt64)]>([:])
    /// Feistel domain and half width → its round table (bounded; see `AnonymizationKey.feistelTable`).
    let feistelTables = Mutex<[String: FeistelRoundTable]>([:])

    private let secret: [UInt8]

    /// PBKDF2 of the key over `salt`, 8 bytes (a fingerprint's digest).
    func derived(salt: [UInt8]) -> [UInt8] {
        let key = secret
        // Only an invalid round count throws; 210,000 is the documented floor.
        let derived = try! KDF.Insecure.PBKDF2.deriveKey(from: key, salt: salt, using: .sha256, outputByteCount: 8, rounds: 210_000)
        return derived.withUnsafeBytes { Array($0) }
    }

    init(_ key: SymmetricKey) {
        secret = key.withUnsafeBytes { Array($0) }
        var block = key.withUnsafeBytes { bytes -> [UInt8] in
            bytes.count > 64 ? Array(SHA256.hash(data: Array(bytes))) : Array(bytes)
        }
        block += [UInt8](repeating: 0, count: 64 - block.count)
        var inner = SHA256_CTX(), outer = SHA256_CTX()
        SHA256_Init(&inner)
        SHA256_Init(&outer)
        SHA256_Update(&inner, block.map { $0 ^ 0x36 }, 64)
        SHA256_Update(&outer, block.map { $0 ^ 0x5c }, 64)
        hash = KeyedHash(inner: inner, outer: outer)
    }

    func keyedHash(domain: String) -> KeyedHash {
        var keyed = hash
        var domain = domain
        domain.withUTF8 { if $0.count > 0 { SHA256_Update(&keyed.inner, $0.baseAddress, $0.count) } }
        var zero: UInt8 = 0
        SHA256_Update(&keyed.inner, &zero, 1)
        return keyed
    }

    func mac(domain: String, _ value: UnsafeRawBufferPointer) -> [UInt8] {
        keyedHash(domain: domain).digest(value).withUnsafeBytes { Array($0) }
    }
}

/// A problem with a policy, a key or a value; `description` names where.
public struct AnonymizationError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    /// The row (1-based, within the text transformed) whose value could not be masked.
    public var row: Int?
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// A value a rule cannot read as the kind it masks: named by the rule and the kind,
    /// never by the value. Nothing is written in its place; the export stops.
    public static func unreadable(_ rule: String, as kind: String) -> AnonymizationError {
        AnonymizationError("\(rule) cannot read a value as \(kind) (the value is not shown), so it cannot mask it")
    }

    /// The error, naming the column it happened in.
    func `in`(column: String) -> AnonymizationError {
        var error = self
        error.message = "column \(column): " + message
        return error
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
    return String(decoding: out, as: UTF8.self)
}

func unhex(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    for i in stride(from: 0, to: digits.count, by: 2) {
        guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
        out.append(high << 4 | low)
    }
    return out
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

/// A 64-bit number from the first 8 bytes of a digest.
func word(_ bytes: [UInt8], at offset: Int = 0) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
    return v
}
