import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import Logging
import PostgresClient

/// Point-in-time recovery beside pgBackRest, each on a server of its own made here.
struct BenchPITR: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pitr",
        abstract: "WAL archiving, base backup and restore to the end of the archive, beside pgBackRest.",
        discussion: """
            Makes two PostgreSQL servers (initdb, as the postgres user, under /var/tmp), one archiving \
            through 'dbq wal push' into a local store, one through 'pgbackrest archive-push' into a local \
            repository (pgBackRest reaches S3 over HTTPS only, so both use a local directory on the same \
            disk; zstd level 3 for both). On each: pgbench -i -s SCALE (archived as it is written), then, \
            synchronous and asynchronous (dbq wal push --ahead 4; pgBackRest --archive-async --process-max=4), a backlog of WAL written by pgbench for --seconds while archiving is held, then MB/s until the \
            archive has every segment; a base \
            backup (dbq run basebackup; pgbackrest backup --type=full); a restore to the end of the archive \
            into a new directory, started, until promoted (dbq run pitr-restore --latest --start; \
            pgbackrest restore, then pg_ctl start). Peak RSS under GNU time. × is pgBackRest's time over \
            dbq's (above 1: dbq is faster). deploy/local/bench-pitr.sh installs pgBackRest and runs this.
            """)

    @Option(help: "pgbench scale (100,000 accounts each).") var scale = 20
    @Option(help: "Seconds of pgbench writes whose WAL is archived.") var seconds = 30
    @Option(help: "The PostgreSQL binaries (default: /usr/lib/postgresql/15/bin).") var bin = "/usr/lib/postgresql/15/bin"

    func validate() throws {
        if scale < 1 || scale > 1000 { throw ValidationError("--scale must be from 1 to 1000") }
        if seconds < 5 || seconds > 3600 { throw ValidationError("--seconds must be from 5 to 3600") }
    }

    func run() async throws {
        try await reportingFailures {
            guard getuid() == 0 else { throw CheckFailure("dbq bench pitr makes servers as the postgres user: run it as root") }
            let tools = try Tools(aws: nil)
            guard let pgbackrest = Subprocess.locate("pgbackrest") else {
                throw CheckFailure("'pgbackrest' was not found: apt-get install pgbackrest (deploy/local/bench-pitr.sh does)")
            }
            let dbq = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            let root = "/var/tmp/dbq-bench-pitr-\(getpid())"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            defer { try? FileManager.default.removeItem(atPath: root) }
            emit("dbq bench pitr — pgbench scale \(scale), \(seconds) s of writes; local store and repository on \(root)")
            let dbqFigures = try await measure(.dbq(dbq), root: root + "/dbq", tools: tools, pgbackrest: pgbackrest)
            let peerFigures = try await measure(.pgbackrest, root: root + "/pgbackrest", tools: tools, pgbackrest: pgbackrest)
            emit("")
            emit("  " + cell("", 31) + cell("     dbq", 17) + cell("  pgBackRest 2.45", 21) + "    ×")
            func cell(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
            func row(_ label: String, _ a: Double, _ b: Double, unit: String, higherIsBetter: Bool = false) {
                let ratio = higherIsBetter ? a / b : b / a
                emit("  " + cell(label, 31) + cell(String(format: "%8.2f %@", a, unit), 17) + cell(String(format: "%8.2f %@", b, unit), 21)
                     + String(format: "%5.2f×", ratio))
            }
            row("WAL archived, synchronous", dbqFigures.walMBps, peerFigures.walMBps, unit: "MB/s", higherIsBetter: true)
            row("WAL archived, asynchronous", dbqFigures.walAsyncMBps, peerFigures.walAsyncMBps, unit: "MB/s", higherIsBetter: true)
            row("base backup", dbqFigures.backupSeconds, peerFigures.backupSeconds, unit: "s")
            row("restore to latest, promoted", dbqFigures.restoreSeconds, peerFigures.restoreSeconds, unit: "s")
            emit("  " + cell("peak RSS (backup, restore)", 31)
                 + cell(String(format: "%8.1f MiB", Double(max(dbqFigures.backupPeak, dbqFigures.restorePeak)) / 1_048_576), 17)
                 + String(format: "%8.1f MiB", Double(max(peerFigures.backupPeak, peerFigures.restorePeak)) / 1_048_576))
            emit("  " + cell("stored (base backup + WAL)", 31) + cell(String(format: "%8.1f MiB", Double(dbqFigures.storedBytes) / 1_048_576), 17)
                 + String(format: "%8.1f MiB", Double(peerFigures.storedBytes) / 1_048_576))
            emit("target: ≥ 1.0× pgBackRest on each (× above 1: dbq is faster)")
        }
    }

    enum Tool {
        case dbq(String)
        case pgbackrest
        var name: String { if case .dbq = self { "dbq" } else { "pgBackRest" } }
    }

    struct Figures {
        var walMBps = 0.0
        var walAsyncMBps = 0.0
        var backupSeconds = 0.0
        var restoreSeconds = 0.0
        var backupPeak = 0
        var restorePeak = 0
        var storedBytes: Int64 = 0
    }

    func measure(_ tool: Tool, root: String, tools: Tools, pgbackrest: String) async throws -> Figures {
        var figures = Figures()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try shell(["chown", "postgres:", root])
        let data = root + "/data", repo = root + "/repo"
        try asPostgres(["mkdir", "-p", repo, root + "/log", root + "/lock"])
        let port = try freePort()
        let env = ProcessInfo.processInfo.environment
        try asPostgres([bin + "/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"])
        let archive: String
        var dbqConfig = ""
        var dbqBinary = ""
        let pgbrConfig = root + "/pgbackrest.conf"
        switch tool {
        case .dbq(let executable):
            dbqBinary = root + "/dbq"
            try FileManager.default.copyItem(atPath: executable, toPath: dbqBinary)
            dbqConfig = root + "/dbq.yaml"
            try """
                databases:
                  bench: "postgresql://postgres@127.0.0.1:\(port)/postgres"
                storages:
                  archive: {url: "file://\(repo)"}
                """.write(toFile: dbqConfig, atomically: true, encoding: .utf8)
            try shell(["chmod", "a+rx", dbqBinary, dbqConfig])
            archive = "\(dbqBinary) wal push %p --database bench --config \(dbqConfig)"
        case .pgbackrest:
            try """
                [global]
                repo1-path=\(repo)
                compress-type=zst
                compress-level=3
                log-path=\(root)/log
                lock-path=\(root)/lock
                log-level-console=warn
                start-fast=y

                [bench]
                pg1-path=\(data)
                pg1-port=\(port)
                pg1-socket-path=\(root)
                """.write(toFile: pgbrConfig, atomically: true, encoding: .utf8)
            try shell(["chmod", "a+r", pgbrConfig])
            archive = "\(pgbackrest) --config=\(pgbrConfig) --stanza=bench archive-push %p"
        }
        let conf = """

            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = '\(root)'
            archive_mode = on
            archive_command = '\(archive)'
            max_wal_size = 1GB
            synchronous_commit = off
            """
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/postgresql.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(conf.utf8))
        try handle.close()
        try asPostgres([bin + "/pg_ctl", "-D", data, "-l", root + "/server.log", "-w", "-t", "60", "start"])
        defer { _ = try? asPostgres([bin + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"]) }
        if case .pgbackrest = tool { try asPostgres([pgbackrest, "--config=\(pgbrConfig)", "--stanza=bench", "stanza-create"]) }
        let url = "postgresql://postgres@127.0.0.1:\(port)/postgres"
        emit("\(tool.name): loading pgbench -s \(scale) …")
        try shell([tools.pgbench, "-i", "-q", "-s", "\(scale)", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "postgres"], environment: env)
        _ = try await caughtUp(url)
        // WAL archived per second: a backlog written by pgbench for `seconds` while archiving
        // is held (archive_command = 'false'), then the real command back and the time until
        // the archive has every segment.
        let asyncArchive: String
        switch tool {
        case .dbq: asyncArchive = archive + " --ahead 4 --spool \(root)/spool"
        case .pgbackrest: asyncArchive = archive.replacingOccurrences(of: " archive-push", with: " --archive-async --process-max=4 --spool-path=\(root)/spool archive-push")
        }
        for (mode, command) in [("synchronous", archive), ("asynchronous", asyncArchive)] {
            try await setArchiveCommand(url, "false")
            try shell([tools.pgbench, "-T", "\(seconds)", "-c", "4", "-j", "2", "-n", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "postgres"], environment: env)
            let before = try await archived(url)
            let started = ContinuousClock.now
            try await setArchiveCommand(url, command)
            let segments = try await caughtUp(url) - before
            let elapsed = (ContinuousClock.now - started).seconds
            let rate = Double(segments) * 16.777216 / elapsed
            if mode == "synchronous" { figures.walMBps = rate } else { figures.walAsyncMBps = rate }
            emit(String(format: "%@ (%@): a backlog of %d segments archived in %.1f s (%.1f MB/s)", tool.name, mode, segments, elapsed, rate))
        }
        try await setArchiveCommand(url, archive)
        // Base backup.
        switch tool {
        case .dbq:
            (figures.backupSeconds, figures.backupPeak) = try await timedPeak(tools, root, [dbqBinary, "run", "basebackup", "--database", "bench", "--level", "3", "--config", dbqConfig])
        case .pgbackrest:
            (figures.backupSeconds, figures.backupPeak) = try await timedPeak(tools, root, ["runuser", "-u", "postgres", "--", pgbackrest, "--config=\(pgbrConfig)", "--stanza=bench", "--type=full", "backup"])
        }
        emit(String(format: "%@: base backup %.2f s", tool.name, figures.backupSeconds))
        // A few more writes, archived, so the restore replays WAL past the backup.
        try shell([tools.pgbench, "-T", "5", "-c", "2", "-n", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "postgres"], environment: env)
        _ = try await caughtUp(url)
        // Restore to the end of the archive, started, until promoted.
        let target = root + "/restored"
        let port2 = try freePort()
        let url2 = "postgresql://postgres@127.0.0.1:\(port2)/postgres"
        defer { _ = try? asPostgres([bin + "/pg_ctl", "-D", target, "-m", "immediate", "-w", "stop"]) }
        switch tool {
        case .dbq:
            (figures.restoreSeconds, figures.restorePeak) = try await timedPeak(tools, root, [
                dbqBinary, "run", "pitr-restore", "--database", "bench", "--latest", "--data-directory", target, "--port", "\(port2)", "--start",
                "--run-as", "postgres", "--dbq", dbqBinary, "--config", dbqConfig, "--timeline", "current"])
        case .pgbackrest:
            let clock = ContinuousClock.now
            let (_, peak) = try await timedPeak(tools, root, ["runuser", "-u", "postgres", "--", pgbackrest, "--config=\(pgbrConfig)", "--stanza=bench",
                                                              "--pg1-path=\(target)", "--type=default", "restore"])
            try asPostgres([bin + "/pg_ctl", "-D", target, "-l", root + "/restored.log", "-w", "-t", "3600", "-o", "-p \(port2) -c archive_mode=off", "start"])
            var promoted = false
            while !promoted {
                if let c = try? await PostgresConnection.connect(url2, logger: Logger(label: "bench")) {
                    promoted = (try? await c.query("SELECT pg_is_in_recovery()").scalar) == "f"
                    await c.close()
                }
                if !promoted { try await Task.sleep(for: .milliseconds(100)) }
            }
            figures.restoreSeconds = (ContinuousClock.now - clock).seconds
            figures.restorePeak = peak
        }
        emit(String(format: "%@: restore to latest %.2f s", tool.name, figures.restoreSeconds))
        figures.storedBytes = directorySize(repo)
        return figures
    }

    /// Switches WAL and waits until the archiver has stored the file it left; returns the archived count.
    func caughtUp(_ url: String) async throws -> Int {
        let c = try await PostgresConnection.connect(url, logger: Logger(label: "bench"))
        defer { Task { await c.close() } }
        let file = try await c.query("SELECT pg_walfile_name(pg_switch_wal())").scalar ?? ""
        while true {
            let row = try await c.query("SELECT coalesce(last_archived_wal, ''), archived_count, last_failed_wal FROM pg_stat_archiver").first
            if (row?[0] ?? "") >= file { return Int(row?[1] ?? "0") ?? 0 }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func setArchiveCommand(_ url: String, _ command: String) async throws {
        let c = try await PostgresConnection.connect(url, logger: Logger(label: "bench"))
        defer { Task { await c.close() } }
        _ = try await c.execute("ALTER SYSTEM SET archive_command = '\(command.replacingOccurrences(of: "'", with: "''"))'")
        _ = try await c.execute("SELECT pg_reload_conf()")
    }

    func archived(_ url: String) async throws -> Int {
        let c = try await PostgresConnection.connect(url, logger: Logger(label: "bench"))
        defer { Task { await c.close() } }
        return Int(try await c.query("SELECT archived_count FROM pg_stat_archiver").scalar ?? "0") ?? 0
    }

    func timedPeak(_ tools: Tools, _ work: String, _ command: [String]) async throws -> (Double, Int) {
        let (seconds, peak) = try await tools.timed(command.prefix(3).joined(separator: " "), work: work, environment: ProcessInfo.processInfo.environment, command)
        return (seconds, peak ?? 0)
    }

    func asPostgres(_ arguments: [String]) throws { try shell(["runuser", "-u", "postgres", "--"] + arguments) }

    func shell(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let p = try Subprocess("/usr/bin/env", arguments: arguments, environment: environment)
        guard p.waitBlocking() == 0 else { throw CheckFailure("\(arguments.joined(separator: " ")) failed: \(p.standardError.suffix(1500))") }
    }

    func directorySize(_ path: String) -> Int64 {
        var total: Int64 = 0
        let e = FileManager.default.enumerator(atPath: path)
        while let item = e?.nextObject() as? String {
            if let size = (try? FileManager.default.attributesOfItem(atPath: path + "/" + item))?[.size] as? Int64 { total += size }
        }
        return total
    }

    func freePort() throws -> Int {
        guard let port = LoopbackPort.free() else { throw CheckFailure("no free port") }
        return port
    }
}
