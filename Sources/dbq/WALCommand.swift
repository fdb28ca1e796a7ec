import ArgumentParser
import Backups
import Crypto
import DBQCommand
import Foundation
import ObjectStorage
import PostgresClient
import Queue

/// `dbq wal push|fetch|status`: PostgreSQL's archive and restore commands, and what the
/// archive holds.
struct WALCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Archive and fetch WAL for point-in-time recovery (PostgreSQL's archive_command and restore_command).",
        discussion: """
            postgresql.conf:
              archive_mode = on
              archive_command = 'dbq wal push %p --database main --config /etc/dbq/dbq.yaml'
            A restore (dbq push pitr-restore) writes its own restore_command:
              restore_command = 'dbq wal fetch %f %p --database main --config /etc/dbq/dbq.yaml'
            """,
        subcommands: [Push.self, Fetch.self, Status.self])

    struct Push: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "push",
            abstract: "Archive one WAL file (archive_command): compressed, named by its SHA-256; exits 0 once the store has it.",
            discussion: """
                A file already archived with the same content succeeds at once (PostgreSQL may ask twice); \
                one archived with other content is refused and nothing is overwritten (exit 1).
                """)
        @Argument(help: "The file PostgreSQL gives as %p (pg_wal/000000010000000000000003, or a .history or .backup file).")
        var path: String
        @Option(help: "The configured database whose archive this is.") var database: String
        @Option(help: "Also push up to N-1 of the segments waiting after this one (their .ready files), in parallel; PostgreSQL's later calls for them answer at once from the spool. 1: this file only.")
        var ahead = 1
        @Option(help: "Where --ahead notes what it pushed (default: /var/tmp/dbq-wal-spool/<database>).") var spool: String?
        @OptionGroup var store: StoreOptions

        func validate() throws {
            if ahead < 1 || ahead > 64 { throw ValidationError("--ahead must be from 1 to 64") }
        }

        func run() async throws {
            try await reportingFailures {
                let name = URL(fileURLWithPath: path).lastPathComponent
                guard let file = WALFileName(name) else {
                    throw JobError.permanent("'\(path)' is not a WAL file PostgreSQL archives (a segment, .history, .backup or .partial file): is archive_command given %p?")
                }
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw JobError.permanent("cannot read \(path): does the user running PostgreSQL run dbq, and may it read pg_wal?")
                }
                let spool = WALSpool(directory: spool ?? "/var/tmp/dbq-wal-spool/\(database)")
                // Pushed ahead by an earlier call, with this very content: done.
                if ahead > 1, spool.pushed(file, bytes: Array(data)) { return }
                let (_, objectStore) = try store.environment().store(store.storage)
                let archive = WALArchive(store: objectStore, database: database)
                let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
                let next = ahead > 1 ? WALSpool.waiting(after: file, in: directory, count: ahead - 1) : []
                let bytes = Array(data), noting = ahead > 1
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        _ = try await archive.push(file, bytes: bytes)
                        if noting { spool.note(file, bytes: bytes) }
                    }
                    for other in next {
                        group.addTask {
                            // A segment ahead that fails is PostgreSQL's to retry when it asks for it.
                            guard let bytes = FileManager.default.contents(atPath: directory + "/" + other.name).map(Array.init),
                                  (try? await archive.push(other, bytes: bytes)) != nil else { return }
                            spool.note(other, bytes: bytes)
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fetch",
            abstract: "Fetch one archived WAL file (restore_command): checked against its SHA-256, decompressed, written to the path.",
            discussion: """
                Exit 0: written. Exit 1 without a message: the archive has no such file (PostgreSQL asks past \
                the end of the archive and for timelines that do not exist). Exit 1 with a message: anything else \
                (a corrupt object is never written).
                """)
        @Argument(help: "The file name PostgreSQL asks for (%f).") var name: String
        @Argument(help: "Where to write it (%p).") var path: String
        @Option(help: "The configured database whose archive this is.") var database: String
        @Option(help: "Also fetch the next N-1 segments in parallel into the spool, for PostgreSQL's next calls. 1: this file only.")
        var prefetch = 1
        @Option(help: "Where --prefetch keeps segments fetched ahead (default: /var/tmp/dbq-wal-prefetch/<database>).") var spool: String?
        @OptionGroup var store: StoreOptions

        func validate() throws {
            if prefetch < 1 || prefetch > 64 { throw ValidationError("--prefetch must be from 1 to 64") }
        }

        func run() async throws {
            guard let file = WALFileName(name) else {
                // PostgreSQL asks for names of its own only; anything else is a wrong command line.
                stderrLine("dbq wal fetch: '\(name)' is not a WAL file name: is restore_command given %f %p?")
                throw ExitCode.failure
            }
            var bytes: [UInt8]?
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                let archive = WALArchive(store: objectStore, database: database)
                guard prefetch > 1, file.kind == .segment, let number = file.segmentNumber() else {
                    bytes = try await archive.fetch(file)
                    return
                }
                // Segments fetched ahead were checked against their digest when fetched.
                // One spool per archive: two restores on a host never share segments.
                let tag = SigV4Signer.hex(SHA256.hash(data: Array(objectStore.url.utf8)).prefix(4))
                let directory = spool ?? "/var/tmp/dbq-wal-prefetch/\(database)-\(tag)"
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                func spooled(_ f: WALFileName) -> String { directory + "/" + f.name }
                if let ready = FileManager.default.contents(atPath: spooled(file)) {
                    bytes = Array(ready)
                    try? FileManager.default.removeItem(atPath: spooled(file))
                }
                // Keep the next prefetch-1 segments in the spool: fetched together when fewer
                // than half of them are there.
                let upcoming = (1..<UInt64(prefetch)).map { WALFileName.segment(timeline: file.timeline, number: number + $0) }
                let missing = upcoming.filter { !FileManager.default.fileExists(atPath: spooled($0)) }
                let refill = missing.count * 2 > upcoming.count ? missing : []
                let wanted = bytes == nil
                bytes = try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                    if wanted { group.addTask { try await archive.fetch(file) } }
                    for next in refill {
                        group.addTask {
                            // One the archive lacks (the end of it) or cannot give: PostgreSQL asks again.
                            if let b = try? await archive.fetch(next) {
                                FileManager.default.createFile(atPath: spooled(next) + ".tmp", contents: Data(b))
                                _ = rename(spooled(next) + ".tmp", spooled(next))
                            }
                            return nil
                        }
                    }
                    var mine = bytes
                    for try await result in group where result != nil { mine = result }
                    return mine
                }
            }
            guard let bytes else { throw ExitCode.failure }
            // Written beside, then renamed: PostgreSQL never reads half a segment.
            let temporary = path + ".dbq-partial"
            guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
                stderrLine("dbq wal fetch: cannot write \(temporary)")
                throw ExitCode.failure
            }
            guard rename(temporary, path) == 0 else {
                stderrLine("dbq wal fetch: cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
                throw ExitCode.failure
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "What the WAL archive holds: per timeline the first and last segment and every gap; the server's archiver.",
            discussion: "Exit 2 when the archive has a gap or the server's last archiving attempt failed.")
        @Option(help: "The configured database.") var database: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var store: StoreOptions

        func run() async throws {
            var critical = false
            try await reportingFailures {
                let env = try store.environment()
                let (_, objectStore) = try env.store(store.storage)
                let summary = WALArchiveSummary(try await WALArchive(store: objectStore, database: database).list())
                var archiver: WALArchiverState?
                if let url = try? env.database(database) {
                    archiver = try? await WALArchiverState.read(url)
                }
                critical = summary.timelines.contains { !$0.gaps.isEmpty } || archiver?.failing == true
                if json {
                    struct Out: Encodable { var archive: WALArchiveSummary; var archiver: WALArchiverState? }
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    encoder.dateEncodingStrategy = .iso8601
                    print(String(decoding: try encoder.encode(Out(archive: summary, archiver: archiver)), as: UTF8.self))
                    return
                }
                print("archive \(objectStore.url)/wal/\(database): \(summary.objects) files, \(formatBytes(summary.bytes))")
                for t in summary.timelines {
                    print("  timeline \(t.timeline): \(t.first) … \(t.last), \(t.segments) segments" + (t.gaps.isEmpty ? "" : "; GAPS (a restore cannot pass them): \(t.gaps.joined(separator: ", "))"))
                }
                if !summary.histories.isEmpty { print("  histories: \(summary.histories.joined(separator: ", "))") }
                if let at = summary.lastArchivedAt { print("  last stored: \(utcText(at)) UTC") }
                if let a = archiver {
                    print("server: archived \(a.archivedCount), last \(a.lastArchivedWAL ?? "-") at \(a.lastArchivedTime ?? "-"); failed \(a.failedCount)"
                          + (a.failing ? ", LAST ATTEMPT FAILED: \(a.lastFailedWAL ?? "-") at \(a.lastFailedTime ?? "-")" : ""))
                }
            }
            if critical { throw ExitCode(2) }
        }
    }
}
