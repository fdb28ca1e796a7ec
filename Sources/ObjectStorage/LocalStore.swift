import CDBQSystem
import DBQSupport
import Foundation

/// An object store in a local directory (`file:///path`): the embedded default.
///
/// A put writes a temporary file beside the target, fsyncs it, renames it into place and
/// fsyncs the directory, so a reader sees the whole object or none, even across a crash.
/// Temporary files start with `.dbq-tmp-` and are never listed.
public struct LocalStore: ObjectStore {
    public let root: String
    static let temporaryPrefix = ".dbq-tmp-"
    static let readChunkSize = 1 << 20

    /// `root` is an absolute directory; it is created if missing.
    public init(root: String) throws {
        guard root.hasPrefix("/") else {
            throw ObjectStoreError(code: .invalidURL, message: "local store path '\(root)' is not absolute; use file:///absolute/path")
        }
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
        do {
            try FileManager.default.createDirectory(atPath: trimmed, withIntermediateDirectories: true)
        } catch {
            throw ObjectStoreError(code: .io, message: "cannot create local store directory \(trimmed): \(Self.reason(error))", store: "file://\(trimmed)")
        }
    }

    public var url: String { "file://\(root)" }

    func path(_ key: String) -> String { root + "/" + key }

    public func stage<S: AsyncSequence>(_ key: String, from body: S) async throws -> StagedWrite where S.Element == [UInt8] {
        try ObjectKey.validate(key, store: url)
        if key.split(separator: "/").contains(where: { $0.hasPrefix(Self.temporaryPrefix) }) {
            throw ObjectStoreError(code: .invalidKey, message: "object key '\(key)' uses the reserved prefix \(Self.temporaryPrefix)", store: url, key: key)
        }
        let url = url
        let target = path(key)
        let directory = (target as NSString).deletingLastPathComponent
        let temporary = directory + "/" + Self.temporaryPrefix + UUID().uuidString + "-" + (target as NSString).lastPathComponent
        let file = try await BlockingLane.detached { () throws -> LocalFile in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            return try LocalFile(creating: temporary, store: url, key: key)
        }
        let discard: @Sendable () async -> Void = {
            _ = await file.lane.run { file.close(); return unlink(temporary) }
        }
        var size: Int64 = 0
        do {
            for try await chunk in body where !chunk.isEmpty {
                try await file.lane.run { try file.write(chunk) }
                size += Int64(chunk.count)
            }
        } catch {
            await discard()
            throw error
        }
        return StagedWrite(key: key, commit: { [size] in
            do {
                try await file.lane.run {
                    try file.sync()
                    file.close()
                    guard rename(temporary, target) == 0 else {
                        throw ObjectStoreError(code: .io, message: "cannot move \(temporary) to \(target): \(String(cString: strerror(errno)))", store: url, key: key)
                    }
                    LocalFile.syncDirectory(directory)
                }
            } catch {
                await discard()
                throw error
            }
            return ObjectInfo(key: key, size: size, etag: nil, lastModified: Date())
        }, discard: discard)
    }

    public func get(_ key: String) async throws -> ByteStream {
        try ObjectKey.validate(key, store: url)
        let target = path(key)
        let file = try await BlockingLane.detached { () throws -> LocalFile in
            try LocalFile(reading: target, store: url, key: key)
        }
        return ByteStream {
            try await file.lane.run { try file.read(max: Self.readChunkSize) }
        }
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        try ObjectKey.validate(key, store: url)
        let target = path(key)
        return try await BlockingLane.detached {
            var info = stat()
            guard stat(target, &info) == 0 else {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw ObjectStoreError(code: .io, message: "cannot stat \(target): \(String(cString: strerror(errno)))", store: self.url, key: key)
            }
            guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return ObjectInfo(key: key, size: Int64(info.st_size), etag: nil,
                              lastModified: Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec)))
        }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        let root = self.root
        return try await BlockingLane.detached {
            var objects: [ObjectInfo] = []
            guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
            while let relative = walker.nextObject() as? String {
                guard relative.hasPrefix(prefix) else {
                    // Skip whole directories that cannot hold a match.
                    if let attrs = walker.fileAttributes, attrs[.type] as? FileAttributeType == .typeDirectory,
                       !prefix.hasPrefix(relative + "/") {
                        walker.skipDescendants()
                    }
                    continue
                }
                let name = (relative as NSString).lastPathComponent
                guard !name.hasPrefix(Self.temporaryPrefix),
                      let attrs = walker.fileAttributes, attrs[.type] as? FileAttributeType == .typeRegular else { continue }
                objects.append(ObjectInfo(key: relative, size: (attrs[.size] as? NSNumber)?.int64Value ?? 0, etag: nil,
                                          lastModified: attrs[.modificationDate] as? Date))
            }
            return objects.sorted { $0.key < $1.key }
        }
    }

    public func delete(_ key: String) async throws {
        try ObjectKey.validate(key, store: url)
        let target = path(key)
        try await BlockingLane.detached {
            if unlink(target) != 0 && errno != ENOENT {
                throw ObjectStoreError(code: .io, message: "cannot delete \(target): \(String(cString: strerror(errno)))", store: self.url, key: key)
            }
        }
    }

    /// Temporary files older than `age`: what a crashed writer left. Retention removes them.
    public func staleTemporaryFiles(olderThan age: TimeInterval, now: Date = Date()) async throws -> [String] {
        let root = self.root
        return try await BlockingLane.detached {
            var stale: [String] = []
            guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
            while let relative = walker.nextObject() as? String {
                guard (relative as NSString).lastPathComponent.hasPrefix(Self.temporaryPrefix),
                      let modified = walker.fileAttributes?[.modificationDate] as? Date,
                      now.timeIntervalSince(modified) > age else { continue }
                stale.append(root + "/" + relative)
            }
            return stale
        }
    }

    public func abandonedWrites(prefix: String, olderThan age: TimeInterval, now: Date) async throws -> [AbandonedWrite] {
        let root = self.root
        let temporaryPrefix = Self.temporaryPrefix
        return try await staleTemporaryFiles(olderThan: age, now: now).compactMap { path in
            let relative = String(path.dropFirst(root.count + 1))
            let directory = (relative as NSString).deletingLastPathComponent
            let name = (relative as NSString).lastPathComponent
            // .dbq-tmp-<UUID>-<name>: the UUID is 36 characters.
            let target = String(name.dropFirst(temporaryPrefix.count + 37))
            let key = directory.isEmpty ? target : directory + "/" + target
            guard key.hasPrefix(prefix) else { return nil }
            let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
            return AbandonedWrite(key: key, started: modified, handle: path)
        }
    }

    public func discard(_ write: AbandonedWrite) async throws {
        let root = self.root
        guard write.handle.hasPrefix(root + "/"), (write.handle as NSString).lastPathComponent.hasPrefix(Self.temporaryPrefix) else {
            throw ObjectStoreError(code: .invalidKey, message: "\(write.handle) is not a temporary file of \(url)", store: url, key: write.key)
        }
        let url = self.url
        try await BlockingLane.detached {
            if unlink(write.handle) != 0 && errno != ENOENT {
                throw ObjectStoreError(code: .io, message: "cannot delete \(write.handle): \(String(cString: strerror(errno)))", store: url, key: write.key)
            }
        }
    }

    static func reason(_ error: any Error) -> String {
        (error as NSError).localizedDescription
    }
}

/// A POSIX file descriptor with the lane it is used on.
final class LocalFile: @unchecked Sendable {
    // @unchecked Sendable: `fd` is used only inside `lane.run` (a serial lane) after init.
    let lane = BlockingLane(label: "dbq.file")
    private var fd: Int32
    private let store: String
    private let key: String
    /// Bytes written, and how many of them have been handed to the disk's writeback.
    private var written: Int64 = 0
    private var handedToDisk: Int64 = 0
    /// Writeback is started every this many bytes, so the closing fsync waits for the last
    /// few MiB instead of the whole object (a 500 MB export spent most of its last half
    /// second there).
    static let writebackStep: Int64 = 8 << 20

    init(creating path: String, store: String, key: String) throws {
        self.store = store
        self.key = key
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw ObjectStoreError(code: .io, message: "cannot create \(path): \(String(cString: strerror(errno)))", store: store, key: key)
        }
    }

    init(reading path: String, store: String, key: String) throws {
        self.store = store
        self.key = key
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR {
                throw ObjectStoreError(code: .notFound, message: "no object at \(store)/\(key)", store: store, key: key)
            }
            throw ObjectStoreError(code: .io, message: "cannot open \(path): \(String(cString: strerror(errno)))", store: store, key: key)
        }
    }

    deinit { if fd >= 0 { Foundation.close(fd) } }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ObjectStoreError(code: .io, message: "cannot write \(store)/\(key): \(String(cString: strerror(errno)))", store: store, key: key)
                }
                offset += n
            }
        }
        written += Int64(bytes.count)
        if written - handedToDisk >= Self.writebackStep {
            // Advisory: an error here (a file system without it) leaves the work to fsync.
            _ = CSystem_start_writeback(fd, handedToDisk, written - handedToDisk)
            handedToDisk = written
        }
    }

    func read(max: Int) throws -> [UInt8]? {
        guard fd >= 0 else { return nil }
        var chunk = [UInt8](repeating: 0, count: max)
        var n: Int
        repeat {
            n = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress!, max) }
        } while n < 0 && errno == EINTR
        if n < 0 {
            throw ObjectStoreError(code: .io, message: "cannot read \(store)/\(key): \(String(cString: strerror(errno)))", store: store, key: key)
        }
        if n == 0 {
            close()
            return nil
        }
        chunk.removeLast(max - n)
        return chunk
    }

    func sync() throws {
        if fsync(fd) != 0 {
            throw ObjectStoreError(code: .io, message: "cannot fsync \(store)/\(key): \(String(cString: strerror(errno)))", store: store, key: key)
        }
    }

    func close() {
        if fd >= 0 { Foundation.close(fd) }
        fd = -1
    }

    /// Makes a rename in `directory` durable.
    static func syncDirectory(_ directory: String) {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            Foundation.close(dfd)
        }
    }
}
