import ArgumentParser
import Backups
import DBQCommand
import Foundation
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
        @OptionGroup var store: StoreOptions

        func run() async throws {
            try await reportingFailures {
                let name = URL(fileURLWithPath: path).lastPathComponent
                guard let file = WALFileName(name) else {
                    throw JobError.permanent("'\(path)' is not a WAL file PostgreSQL archives (a segment, .history, .backup or .partial file): is archive_command given %p?")
                }
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw JobError.permanent("cannot read \(path): does the user running PostgreSQL run dbq, and may it read pg_wal?")
                }
                let (_, objectStore) = try store.environment().store(store.storage)
                let archive = WALArchive(store: objectStore, database: database)
                _ = try await archive.push(file, bytes: Array(data))
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
        @OptionGroup var store: StoreOptions

        func run() async throws {
            guard let file = WALFileName(name) else {
                // PostgreSQL asks for names of its own only; anything else is a wrong command line.
                stderrLine("dbq wal fetch: '\(name)' is not a WAL file name: is restore_command given %f %p?")
                throw ExitCode.failure
            }
            var bytes: [UInt8]?
            try await reportingFailures {
                let (_, objectStore) = try store.environment().store(store.storage)
                bytes = try await WALArchive(store: objectStore, database: database).fetch(file)
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
