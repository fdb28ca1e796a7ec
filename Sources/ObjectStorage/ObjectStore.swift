import DBQSupport
import Foundation

/// What a store knows of one object.
public struct ObjectInfo: Sendable, Equatable, Codable {
    public var key: String
    public var size: Int64
    public var etag: String?
    public var lastModified: Date?

    public init(key: String, size: Int64, etag: String? = nil, lastModified: Date? = nil) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// A place to keep objects: S3 or a local directory. Keys are `/`-separated paths
/// relative to the store's prefix.
///
/// A `put` is all or nothing: a reader never sees part of an object, and a failed put
/// leaves no object behind (a local temporary file is removed; an S3 multipart upload is
/// aborted).
public protocol ObjectStore: Sendable {
    /// The store's URL, without secrets: `s3://bucket/prefix` or `file:///path`.
    var url: String { get }

    /// Writes the object's bytes from a stream of unknown length without making it visible
    /// yet: the returned write commits it (S3: CompleteMultipartUpload, then a HEAD check;
    /// local: fsync and rename) or discards it. What `put` does in two steps, so that a
    /// caller can commit one object while it streams the next (`SegmentedWrite`).
    func stage<S: AsyncSequence>(_ key: String, from body: S) async throws -> StagedWrite where S.Element == [UInt8]

    /// Reads the object as a stream of chunks; throws `.notFound` if it does not exist.
    func get(_ key: String) async throws -> ByteStream

    /// The object's size and tag, or nil if it does not exist.
    func head(_ key: String) async throws -> ObjectInfo?

    /// Every object whose key starts with `prefix`, in key order (all pages).
    func list(prefix: String) async throws -> [ObjectInfo]

    /// Removes the object; removing a missing object is not an error.
    func delete(_ key: String) async throws

    /// Writes under `prefix` that were begun more than `age` seconds before `now` and
    /// never finished: S3 multipart uploads, local temporary files. What a killed writer
    /// left; retention discards them.
    func abandonedWrites(prefix: String, olderThan age: TimeInterval, now: Date) async throws -> [AbandonedWrite]

    /// Frees what an abandoned write holds (aborts the upload, removes the file).
    func discard(_ write: AbandonedWrite) async throws
}

/// A write that was started and neither finished nor cleaned up.
public struct AbandonedWrite: Sendable, Equatable {
    /// The key it was writing.
    public var key: String
    public var started: Date?
    /// The S3 upload id, or the local temporary file's path.
    public var handle: String

    public init(key: String, started: Date?, handle: String) {
        self.key = key
        self.started = started
        self.handle = handle
    }
}

/// An object whose bytes are all written but which no reader sees yet (see
/// `ObjectStore.stage`). Commit or discard it exactly once.
public struct StagedWrite: Sendable {
    public let key: String
    private let commitAction: @Sendable () async throws -> ObjectInfo
    private let discardAction: @Sendable () async -> Void

    public init(key: String, commit: @escaping @Sendable () async throws -> ObjectInfo, discard: @escaping @Sendable () async -> Void) {
        self.key = key
        commitAction = commit
        discardAction = discard
    }

    /// Makes the object visible and returns what was stored. If it fails, the write is
    /// discarded (nothing of it stays).
    public func commit() async throws -> ObjectInfo { try await commitAction() }

    /// Frees what the write holds, without making it visible.
    public func discard() async { await discardAction() }
}

extension ObjectStore {
    /// Writes the object from a stream of unknown length and returns what was stored.
    public func put<S: AsyncSequence>(_ key: String, from body: S) async throws -> ObjectInfo where S.Element == [UInt8] {
        try await stage(key, from: body).commit()
    }

    /// Writes a small object held in memory.
    public func put(_ key: String, bytes: [UInt8]) async throws -> ObjectInfo {
        try await put(key, from: ByteStream.chunks([bytes]))
    }

    /// Reads a whole object into memory: for manifests and other small objects.
    public func getBytes(_ key: String, limit: Int = 64 << 20) async throws -> [UInt8] {
        try await get(key).collect(limit: limit)
    }
}

/// An error of an object store. `description` is safe to log.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable { case invalidURL, invalidKey, notFound, accessDenied, network, server, integrity, tooLarge, io, configuration }
        fileprivate let base: Base
        public static let invalidURL = Code(base: .invalidURL)
        public static let invalidKey = Code(base: .invalidKey)
        public static let notFound = Code(base: .notFound)
        /// Credentials refused, or not allowed to do this.
        public static let accessDenied = Code(base: .accessDenied)
        /// Could not reach the server, or the connection broke.
        public static let network = Code(base: .network)
        /// The server answered with an error.
        public static let server = Code(base: .server)
        /// What was stored is not what was sent (size or checksum differ).
        public static let integrity = Code(base: .integrity)
        public static let tooLarge = Code(base: .tooLarge)
        /// A local file operation failed.
        public static let io = Code(base: .io)
        /// Missing or contradictory settings (no credentials, bad part size).
        public static let configuration = Code(base: .configuration)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// The store (`s3://bucket/prefix`, `file:///path`).
    public var store: String?
    public var key: String?
    /// HTTP status, S3 error code (`NoSuchKey`, `SignatureDoesNotMatch`) and request id.
    public var status: Int?
    public var s3Code: String?
    public var requestID: String?

    public init(code: Code, message: String, store: String? = nil, key: String? = nil,
                status: Int? = nil, s3Code: String? = nil, requestID: String? = nil) {
        self.code = code
        self.message = message
        self.store = store
        self.key = key
        self.status = status
        self.s3Code = s3Code
        self.requestID = requestID
    }

    public var description: String {
        var text = message
        if let s3Code { text += " [\(s3Code)\(status.map { " \($0)" } ?? "")\(requestID.map { ", request id \($0)" } ?? "")]" }
        return text
    }

    public var debugDescription: String {
        "ObjectStoreError(code: \(code), message: \(message), store: \(store ?? "-"), key: \(key ?? "-"), status: \(status.map(String.init) ?? "-"), s3Code: \(s3Code ?? "-"), requestID: \(requestID ?? "-"))"
    }
}

/// Checks a key before it reaches a file system or a URL.
enum ObjectKey {
    static func validate(_ key: String, store: String) throws(ObjectStoreError) {
        func bad(_ why: String) -> ObjectStoreError {
            ObjectStoreError(code: .invalidKey, message: "object key '\(key)' \(why)", store: store, key: key)
        }
        if key.isEmpty { throw bad("is empty") }
        if key.utf8.count > 1024 { throw bad("is longer than 1024 bytes") }
        if key.hasPrefix("/") { throw bad("starts with '/'") }
        if key.hasSuffix("/") { throw bad("ends with '/'") }
        if key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { throw bad("contains a control character") }
        for segment in key.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { throw bad("has an empty path segment") }
            if segment == "." || segment == ".." { throw bad("has a '\(segment)' segment") }
        }
    }
}
