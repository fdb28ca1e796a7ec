import DBQSupport
import Foundation

/// A store whose objects are encrypted at rest (`EncryptedObjects`) as they stream in and
/// decrypted and authenticated as they stream out. Manifests, verifications and key
/// records stay readable (listing and retention read them without a key); everything else
/// is encrypted under the current key. Reads take the current key or any old one, chosen
/// by the fingerprint in the object's header. Without a current key the store reads
/// manifests only and refuses to write, naming what to set.
public struct EncryptedStore: ObjectStore {
    public let base: any ObjectStore
    public let current: EncryptedObjects.Key?
    public let old: [EncryptedObjects.Key]
    /// Where the current key comes from, for messages (`DBQ_ENCRYPTION_KEY`).
    public let keySource: String

    public init(base: any ObjectStore, current: EncryptedObjects.Key?, old: [EncryptedObjects.Key] = [], keySource: String) {
        self.base = base
        self.current = current
        self.old = old
        self.keySource = keySource
    }

    public var url: String { base.url }

    /// Objects kept in clear: what lists and retention read.
    public static func isClear(_ key: String) -> Bool {
        let name = key.split(separator: "/").last.map(String.init) ?? key
        return name == "manifest.json" || name == "verification.json" || name == "key-fingerprint"
    }

    var keys: [EncryptedObjects.Key] { (current.map { [$0] } ?? []) + old }

    public func stage<S: AsyncSequence>(_ key: String, from body: S) async throws -> StagedWrite where S.Element == [UInt8] {
        if Self.isClear(key) { return try await base.stage(key, from: body) }
        guard let current else {
            throw ObjectStoreError(code: .configuration, message: "storage \(base.url) is encrypted and \(keySource) is not set: set it to the storage's key to write; nothing was written", store: base.url, key: key)
        }
        let box = IteratorBox(body.makeAsyncIterator())
        let plain = ByteStream { try await box.next() }
        let counter = PlainCount()
        let staged = try await base.stage(key, from: EncryptedObjects.encrypt(plain, key: current, counted: { counter.set($0) }))
        return StagedWrite(key: key, commit: {
            var info = try await staged.commit()
            info.size = counter.value
            return info
        }, discard: { await staged.discard() })
    }

    public func get(_ key: String) async throws -> ByteStream {
        let stream = try await base.get(key)
        if Self.isClear(key) { return stream }
        return EncryptedObjects.decrypt(stream, keys: keys, object: "\(base.url)/\(key)")
    }

    /// Sizes are the plaintext's (what was written), as a plain store reports them.
    public func head(_ key: String) async throws -> ObjectInfo? {
        guard var info = try await base.head(key) else { return nil }
        if !Self.isClear(key) { info.size = EncryptedObjects.plaintextSize(stored: info.size) }
        return info
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await base.list(prefix: prefix).map { info in
            var info = info
            if !Self.isClear(info.key) { info.size = EncryptedObjects.plaintextSize(stored: info.size) }
            return info
        }
    }

    public func delete(_ key: String) async throws { try await base.delete(key) }

    public func abandonedWrites(prefix: String, olderThan age: TimeInterval, now: Date) async throws -> [AbandonedWrite] {
        try await base.abandonedWrites(prefix: prefix, olderThan: age, now: now)
    }

    public func discard(_ write: AbandonedWrite) async throws { try await base.discard(write) }

    /// The fingerprint of the key an object was encrypted with (nil for a clear one).
    public func keyFingerprint(of key: String) async throws -> String? {
        if Self.isClear(key) { return nil }
        var iterator = try await base.get(key).makeAsyncIterator()
        var head: [UInt8] = []
        while head.count < EncryptedObjects.headerSize, let more = try await iterator.next() { head += more }
        return EncryptedObjects.parseHeader(head)?.fingerprint
    }
}

/// The plaintext bytes an encrypting stream consumed, set when it ends.
final class PlainCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count: Int64 = 0
    func set(_ n: Int64) { lock.withLock { count = n } }
    var value: Int64 { lock.withLock { count } }
}

/// An async iterator carried into a `ByteStream`'s closure: pulled by one consumer at a time.
final class IteratorBox<I: AsyncIteratorProtocol>: @unchecked Sendable where I.Element == [UInt8] {
    var iterator: I
    init(_ iterator: I) { self.iterator = iterator }
    func next() async throws -> [UInt8]? { try await iterator.next() }
}

extension ObjectStore {
    /// The fingerprint of the key new objects are encrypted with here (nil: in clear): what
    /// each manifest records.
    public var encryptionKeyFingerprint: String? { (self as? EncryptedStore)?.current?.fingerprint }
}
