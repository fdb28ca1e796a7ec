import Crypto
import Foundation

/// The secret every transform is keyed with. It comes from the environment
/// (`DBQ_ANONYMIZE_KEY`) or `dbq.yaml`, never from a policy or a payload; a manifest
/// records only its fingerprint.
public struct AnonymizationKey: Sendable {
    private let box: KeyBox

    public static let environmentVariable = "DBQ_ANONYMIZE_KEY"
    public static let minimumLength = 16

    public init(_ secret: String) throws(AnonymizationError) {
        guard secret.utf8.count >= Self.minimumLength else {
            throw AnonymizationError("the anonymization key is \(secret.utf8.count) bytes; use at least \(Self.minimumLength) (e.g. openssl rand -hex 32) in \(Self.environmentVariable)")
        }
        box = KeyBox(SymmetricKey(data: Array(secret.utf8)))
    }

    /// The key from `DBQ_ANONYMIZE_KEY`, or an error saying how to set it.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(AnonymizationError) -> AnonymizationKey {
        guard let secret = environment[environmentVariable], !secret.isEmpty else {
            throw AnonymizationError("no anonymization key: set \(environmentVariable) on the worker (at least \(minimumLength) bytes, e.g. openssl rand -hex 32); it never goes in a policy or a payload")
        }
        return try AnonymizationKey(secret)
    }

    /// Names the key without revealing it: two exports with equal fingerprints used the same key.
    public var fingerprint: String {
        String(hex(mac(domain: "dbq:fingerprint", Array("v1".utf8))).prefix(16))
    }

    /// HMAC-SHA-256 of `value` under this key, separated by `domain` (a rule's identity):
    /// the same (domain, value) always gives the same 32 bytes.
    public func mac(domain: String, _ value: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: box.key)
        hmac.update(data: Array(domain.utf8))
        hmac.update(data: [0])
        hmac.update(data: value)
        return Array(hmac.finalize())
    }

    public func mac(domain: String, _ value: String) -> [UInt8] { mac(domain: domain, Array(value.utf8)) }
}

/// The key, shared by every copy of an `AnonymizationKey`.
private final class KeyBox: @unchecked Sendable {
    // @unchecked Sendable: the key is set once in init and only read after; SymmetricKey's
    // storage is immutable, so concurrent reads are safe.
    let key: SymmetricKey
    init(_ key: SymmetricKey) { self.key = key }
}

/// A problem with a policy, a key or a value; `description` names where.
public struct AnonymizationError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
    return String(decoding: out, as: UTF8.self)
}

/// A 64-bit number from the first 8 bytes of a digest.
func word(_ bytes: [UInt8], at offset: Int = 0) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
    return v
}
