import Crypto
import Foundation
import ObjectStorage

/// What `dbq wal push --ahead` pushed before PostgreSQL asked: one small file per WAL file,
/// holding the SHA-256 of the content stored. A later call for that file succeeds at once
/// only if its content has that digest (a file recycled with other content is pushed, and
/// refused by the archive if the name is taken).
public struct WALSpool: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    static func digest(_ bytes: [UInt8]) -> String { SigV4Signer.hex(SHA256.hash(data: bytes)) }

    /// True when `file` with exactly these bytes was pushed ahead; the note is removed.
    public func pushed(_ file: WALFileName, bytes: [UInt8]) -> Bool {
        let note = directory + "/" + file.name + ".pushed"
        guard let text = FileManager.default.contents(atPath: note).map({ String(decoding: $0, as: UTF8.self) }) else { return false }
        guard text == Self.digest(bytes) else { return false }
        try? FileManager.default.removeItem(atPath: note)
        return true
    }

    /// Notes that `file` with these bytes is in the archive.
    public func note(_ file: WALFileName, bytes: [UInt8]) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let note = directory + "/" + file.name + ".pushed"
        FileManager.default.createFile(atPath: note + ".tmp", contents: Data(Self.digest(bytes).utf8))
        _ = rename(note + ".tmp", note)
    }

    /// Up to `count` WAL files after `file` that PostgreSQL has marked ready to archive
    /// (`archive_status/<name>.ready` beside them), in order.
    public static func waiting(after file: WALFileName, in walDirectory: String, count: Int) -> [WALFileName] {
        let status = walDirectory + "/archive_status"
        let ready = ((try? FileManager.default.contentsOfDirectory(atPath: status)) ?? [])
            .filter { $0.hasSuffix(".ready") }
            .compactMap { WALFileName(String($0.dropLast(".ready".count))) }
            .filter { $0 > file && $0.kind == .segment }
            .sorted()
        return Array(ready.prefix(count))
    }
}
