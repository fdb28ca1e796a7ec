import Crypto
import DBQSupport
import Foundation

/// dbq's format for an object encrypted at rest (pure, no I/O).
///
/// ```
/// header (64 bytes): "DBQENC01" | version 1 | algorithm 1 (AES-256-GCM) | 2 zero bytes
///                    | chunk size (u32, plaintext bytes) | key fingerprint (16 bytes)
///                    | salt (16 bytes) | 12 zero bytes
/// chunks:            ciphertext of chunk-size bytes (the last may be shorter) + 16-byte tag
/// ```
///
/// Each object has its own key, derived with HKDF-SHA-256 from the storage key and the
/// header's random salt, so nonces (the chunk's index) never repeat under one key. Every
/// chunk authenticates the header, its index and whether it is the last: a flipped bit, a
/// truncated object (its last chunk was sealed as not last), chunks reordered (their
/// indexes) or taken from another object (another salt, another key) are refused.
public enum EncryptedObjects {
    public static let magic = Array("DBQENC01".utf8)
    public static let headerSize = 64
    public static let tagSize = 16
    public static let defaultChunkSize = 256 << 10

    /// A storage key and its fingerprint (`SHA-256("dbq encryption key" ‖ key)`, the
    /// first 16 bytes in hex): what manifests and messages name, never the key.
    public struct Key: Sendable {
        let keyBytes: [UInt8]
        public var key: SymmetricKey { SymmetricKey(data: keyBytes) }
        public let fingerprint: String
        var fingerprintBytes: [UInt8]

        /// 64 hex digits or base64 of 32 bytes.
        public init(text: String, name: String) throws(ObjectStoreError) {
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            var bytes: [UInt8]?
            if t.count == 64, t.allSatisfy(\.isHexDigit) {
                bytes = stride(from: 0, to: 64, by: 2).map { i in
                    UInt8(t[t.index(t.startIndex, offsetBy: i)..<t.index(t.startIndex, offsetBy: i + 2)], radix: 16)!
                }
            } else if let data = Data(base64Encoded: t), data.count == 32 {
                bytes = Array(data)
            }
            guard let bytes else {
                throw ObjectStoreError(code: .configuration, message: "\(name) is not a 256-bit key: give 64 hex digits or base64 of 32 bytes (openssl rand -hex 32)")
            }
            self.init(bytes: bytes)
        }

        public init(bytes: [UInt8]) {
            keyBytes = bytes
            let digest = Array(SHA256.hash(data: Array("dbq encryption key".utf8) + bytes)).prefix(16)
            fingerprintBytes = Array(digest)
            fingerprint = SigV4Signer.hex(digest)
        }
    }

    /// The header of a new object under `key`.
    static func header(key: Key, chunkSize: Int, salt: [UInt8]) -> [UInt8] {
        var h = magic + [1, 1, 0, 0]
        withUnsafeBytes(of: UInt32(chunkSize).bigEndian) { h += $0 }
        h += key.fingerprintBytes + salt
        h += [UInt8](repeating: 0, count: headerSize - h.count)
        return h
    }

    struct Header {
        var chunkSize: Int
        var fingerprint: String
        var salt: [UInt8]
        var bytes: [UInt8]
    }

    /// Nil when `bytes` does not start with dbq's header.
    static func parseHeader(_ bytes: [UInt8]) -> Header? {
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic, bytes[8] == 1, bytes[9] == 1 else { return nil }
        let chunk = bytes[12..<16].reduce(0) { $0 << 8 | Int($1) }
        guard chunk > 0, chunk <= 16 << 20 else { return nil }
        let fingerprint = SigV4Signer.hex(bytes[16..<32])
        return Header(chunkSize: chunk, fingerprint: fingerprint, salt: Array(bytes[32..<48]), bytes: Array(bytes[0..<headerSize]))
    }

    static func objectKey(_ key: Key, salt: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key.key, salt: salt, info: Array("dbq object v1".utf8), outputByteCount: 32)
    }

    static func nonce(_ index: UInt64) -> AES.GCM.Nonce {
        var n = [UInt8](repeating: 0, count: 4)
        withUnsafeBytes(of: index.bigEndian) { n += $0 }
        return try! AES.GCM.Nonce(data: n)
    }

    static func aad(_ header: [UInt8], index: UInt64, last: Bool) -> [UInt8] {
        var a = header
        withUnsafeBytes(of: index.bigEndian) { a += $0 }
        a.append(last ? 1 : 0)
        return a
    }

    /// The plaintext size of an encrypted object of `stored` bytes (chunks of `chunkSize`).
    public static func plaintextSize(stored: Int64, chunkSize: Int = defaultChunkSize) -> Int64 {
        let body = stored - Int64(headerSize)
        guard body >= Int64(tagSize) else { return 0 }
        let sealed = Int64(chunkSize + tagSize)
        let chunks = (body + sealed - 1) / sealed
        return body - chunks * Int64(tagSize)
    }

    /// A stream encrypting `source` as it is pulled: the header, then each chunk sealed once
    /// the next bytes show whether it is the last. Holds at most two chunks.
    public static func encrypt(_ source: ByteStream, key: Key, chunkSize: Int = defaultChunkSize,
                               counted: (@Sendable (Int64) -> Void)? = nil) -> ByteStream {
        let state = EncryptState(source: source, key: key, chunkSize: chunkSize, counted: counted)
        return ByteStream { try await state.next() }
    }

    /// A stream decrypting `source` (an object read from `object`) with whichever of `keys`
    /// its header names; every chunk is authenticated before a byte of it is given out.
    public static func decrypt(_ source: ByteStream, keys: [Key], object: String) -> ByteStream {
        let state = DecryptState(source: source, keys: keys, object: object)
        return ByteStream { try await state.next() }
    }
}

/// The encrypting side's state; pulled by one consumer at a time.
final class EncryptState: @unchecked Sendable {
    var iterator: ByteStream.AsyncIterator
    let header: [UInt8]
    let objectKey: SymmetricKey
    let chunkSize: Int
    var buffer: [UInt8] = []
    var index: UInt64 = 0
    var sentHeader = false
    var sourceDone = false
    var finished = false
    var total: Int64 = 0
    let counted: (@Sendable (Int64) -> Void)?

    init(source: ByteStream, key: EncryptedObjects.Key, chunkSize: Int, counted: (@Sendable (Int64) -> Void)?) {
        iterator = source.makeAsyncIterator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
        header = EncryptedObjects.header(key: key, chunkSize: chunkSize, salt: salt)
        objectKey = EncryptedObjects.objectKey(key, salt: salt)
        self.chunkSize = chunkSize
        self.counted = counted
    }

    func seal(_ plain: ArraySlice<UInt8>, last: Bool) throws -> [UInt8] {
        let box = try AES.GCM.seal(plain, using: objectKey, nonce: EncryptedObjects.nonce(index),
                                   authenticating: EncryptedObjects.aad(header, index: index, last: last))
        index += 1
        return Array(box.ciphertext) + Array(box.tag)
    }

    func next() async throws -> [UInt8]? {
        if finished { return nil }
        if !sentHeader {
            sentHeader = true
            return header
        }
        // Enough to know whether the first chunk in the buffer is the last.
        while !sourceDone && buffer.count <= chunkSize {
            if let more = try await iterator.next() {
                buffer += more
                total += Int64(more.count)
            } else {
                sourceDone = true
            }
        }
        if buffer.count > chunkSize {
            let out = try seal(buffer[0..<chunkSize], last: false)
            buffer.removeFirst(chunkSize)
            return out
        }
        finished = true
        counted?(total)
        return try seal(buffer[...], last: true)
    }
}

/// The decrypting side's state.
final class DecryptState: @unchecked Sendable {
    var iterator: ByteStream.AsyncIterator
    let keys: [EncryptedObjects.Key]
    let object: String
    var header: EncryptedObjects.Header?
    var objectKey: SymmetricKey?
    var buffer: [UInt8] = []
    var index: UInt64 = 0
    var sourceDone = false
    var finished = false

    init(source: ByteStream, keys: [EncryptedObjects.Key], object: String) {
        iterator = source.makeAsyncIterator()
        self.keys = keys
        self.object = object
    }

    func refuse(_ why: String) -> ObjectStoreError {
        ObjectStoreError(code: .integrity, message: "\(object) cannot be decrypted: \(why); nothing of it was used", store: "", key: object)
    }

    func fill(_ count: Int) async throws {
        while !sourceDone && buffer.count < count {
            if let more = try await iterator.next() { buffer += more } else { sourceDone = true }
        }
    }

    func next() async throws -> [UInt8]? {
        if finished { return nil }
        if header == nil {
            try await fill(EncryptedObjects.headerSize)
            guard let h = EncryptedObjects.parseHeader(buffer) else {
                throw refuse("it is not an object dbq encrypted (no dbq header): was it written before encryption was configured, or changed?")
            }
            guard let key = keys.first(where: { $0.fingerprint == h.fingerprint }) else {
                let available = keys.map(\.fingerprint)
                throw ObjectStoreError(code: .configuration, message: "\(object) was encrypted with the key whose fingerprint is \(h.fingerprint); the keys available have \(available.isEmpty ? "none (set the storage's key_env, or old_keys_env for an older key)" : available.joined(separator: ", ")): nothing was read", store: "", key: object)
            }
            header = h
            objectKey = EncryptedObjects.objectKey(key, salt: h.salt)
            buffer.removeFirst(EncryptedObjects.headerSize)
        }
        guard let header, let objectKey else { return nil }
        let sealed = header.chunkSize + EncryptedObjects.tagSize
        try await fill(sealed + 1)
        let last = buffer.count <= sealed
        guard buffer.count >= EncryptedObjects.tagSize else {
            throw refuse("it ends inside a chunk (truncated)")
        }
        let take = last ? buffer.count : sealed
        let chunk = buffer[0..<take]
        do {
            let box = try AES.GCM.SealedBox(nonce: EncryptedObjects.nonce(index), ciphertext: chunk.dropLast(EncryptedObjects.tagSize),
                                            tag: chunk.suffix(EncryptedObjects.tagSize))
            let plain = try AES.GCM.open(box, using: objectKey, authenticating: EncryptedObjects.aad(header.bytes, index: index, last: last))
            buffer.removeFirst(take)
            index += 1
            if last { finished = true }
            return Array(plain)
        } catch {
            throw refuse("chunk \(index) fails authentication (changed, truncated, reordered or from another object)")
        }
    }
}
