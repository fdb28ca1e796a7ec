import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import ObjectStorage

struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Look at and change a storage by hand: s3://bucket/prefix or file:///path.",
        subcommands: [List.self, Put.self, Get.self, Remove.self, Reencrypt.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the objects under a URL.")

        @OptionGroup var location: StorageLocation

        func run() async throws {
            try await reportingFailures {
                let store = try location.s3.open(location.url)
                let objects = try await store.list(prefix: "")
                for object in objects {
                    let time = object.lastModified.map { ISO8601DateFormatter().string(from: $0) } ?? "-"
                    print("\(time)  \(String(object.size).leftPadded(12))  \(object.key)")
                }
                FileHandle.standardError.write(Data("\(objects.count) objects\n".utf8))
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put", abstract: "Upload a file (or - for standard input) to an object URL.")

        @Argument(help: "The file to upload, or - for standard input.")
        var file: String

        @Argument(help: "The object: s3://bucket/dir/key or file:///dir/key")
        var url: String

        @OptionGroup var s3: S3OptionGroup

        func run() async throws {
            try await reportingFailures {
                let (store, key) = try s3.openObject(url)
                let source = try FileSource(path: file)
                let started = ContinuousClock.now
                let info = try await store.put(key, from: source.stream())
                let seconds = (ContinuousClock.now - started).seconds
                print("\(url)  \(info.size) bytes  \(String(format: "%.1f", Double(info.size) / 1e6 / max(seconds, 1e-9))) MB/s")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get", abstract: "Download an object to a file (or - for standard output).")

        @Argument(help: "The object: s3://bucket/dir/key or file:///dir/key")
        var url: String

        @Argument(help: "Where to write it; - for standard output.")
        var file: String = "-"

        @OptionGroup var s3: S3OptionGroup

        func run() async throws {
            try await reportingFailures {
                let (store, key) = try s3.openObject(url)
                let stream = try await store.get(key)
                try await FileSink.write(stream, to: file)
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete an object.")

        @OptionGroup var location: StorageLocation

        func run() async throws {
            try await reportingFailures {
                let (store, key) = try location.s3.openObject(location.url)
                guard try await store.head(key) != nil else {
                    throw ObjectStoreError(code: .notFound, message: "no object at \(location.url)", key: key)
                }
                try await store.delete(key)
                print("deleted \(location.url)")
            }
        }
    }
}

/// Reads a file or standard input in 1 MiB chunks, off the cooperative pool.
struct FileSource {
    let handle: FileHandle

    init(path: String) throws {
        if path == "-" {
            handle = .standardInput
        } else {
            guard let opened = FileHandle(forReadingAtPath: path) else {
                throw ValidationError("cannot open '\(path)' for reading: no such file, or not readable")
            }
            handle = opened
        }
    }

    func stream() -> ByteStream {
        let handle = UncheckedBox(handle)
        let lane = BlockingLane(label: "dbq.file-source")
        return ByteStream {
            try await lane.run {
                let data = try handle.value.read(upToCount: 1 << 20) ?? Data()
                return data.isEmpty ? nil : [UInt8](data)
            }
        }
    }
}

enum FileSink {
    static func write(_ stream: ByteStream, to path: String) async throws {
        let handle: FileHandle
        let temporary = path == "-" ? nil : path + ".dbq-partial"
        if let temporary {
            guard FileManager.default.createFile(atPath: temporary, contents: nil), let opened = FileHandle(forWritingAtPath: temporary) else {
                throw ValidationError("cannot create '\(temporary)'")
            }
            handle = opened
        } else {
            handle = .standardOutput
        }
        do {
            for try await chunk in stream { try handle.write(contentsOf: chunk) }
            if let temporary {
                try handle.synchronize()
                try handle.close()
                guard rename(temporary, path) == 0 else {
                    throw CheckFailure("cannot move the download into place at '\(path)': \(String(cString: strerror(errno)))")
                }
            }
        } catch {
            if let temporary { try? FileManager.default.removeItem(atPath: temporary) }
            throw error
        }
    }
}

/// Carries a value that is used by one task at a time into a `@Sendable` closure.
struct UncheckedBox<T>: @unchecked Sendable {
    // @unchecked Sendable: each use site hands the box to a single serial lane.
    let value: T
    init(_ value: T) { self.value = value }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// A storage or object URL and the S3 options to open it with.
struct StorageLocation: ParsableArguments {
    @Argument(help: "s3://bucket/prefix[/key] or file:///path[/key]")
    var url: String

    @OptionGroup var s3: S3OptionGroup
}

extension S3OptionGroup {
    /// The store a storage URL names, opened with these options.
    func open(_ url: String) throws -> any ObjectStore {
        try StorageURL(url).open(options: s3Options(), logger: makeLogger("dbq.storage"))
    }

    /// The store and key an object URL (`s3://bucket/dir/key`, `file:///dir/key`) names.
    func openObject(_ url: String) throws -> (store: any ObjectStore, key: String) {
        let (location, key) = try StorageURL.splitObject(url)
        return (try location.open(options: s3Options(), logger: makeLogger("dbq.storage")), key)
    }
}

extension StorageCommand {
    /// `dbq storage reencrypt`: objects under a prefix read with whichever key they need and
    /// written again under the current one, streamed (never decrypted to disk); each
    /// manifest there is rewritten to name the new key. The object is replaced only once
    /// its new bytes are all written (a put is all or nothing).
    struct Reencrypt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reencrypt",
            abstract: "Re-encrypt the objects under a prefix of an encrypted storage with its current key (after a rotation).",
            discussion: """
                The storage's encryption.key_env holds the new key and old_keys_env the one the objects were written \
                with. Example: dbq storage reencrypt --storage archive backups/main/20261207T030000Z-0A1B2C
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "The key prefix: a folder of an artefact (backups/main/<id>), or a whole family (backups/main/).") var prefix: String

        func run() async throws {
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                guard let encrypted = objectStore as? EncryptedStore, let current = encrypted.current else {
                    throw ValidationError("storage '\(store.storage ?? "default")' is not encrypted, or its key_env is not set: nothing to re-encrypt to")
                }
                var rewritten = 0, skipped = 0, manifests = 0
                for info in try await encrypted.base.list(prefix: prefix) {
                    if EncryptedStore.isClear(info.key) {
                        guard info.key.hasSuffix("/manifest.json") else { continue }
                        let bytes = try await encrypted.base.getBytes(info.key, limit: 64 << 20)
                        guard var object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], object["encryption"] != nil else { continue }
                        object["encryption"] = current.fingerprint
                        _ = try await encrypted.base.put(info.key, bytes: Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])))
                        manifests += 1
                        continue
                    }
                    if try await encrypted.keyFingerprint(of: info.key) == current.fingerprint {
                        skipped += 1
                        continue
                    }
                    _ = try await encrypted.put(info.key, from: try await encrypted.get(info.key))
                    rewritten += 1
                }
                stderrLine("\(rewritten) objects re-encrypted with key \(current.fingerprint), \(skipped) already were, \(manifests) manifests updated")
            }
        }
    }
}
