import DBQTestSupport
import Foundation
import Testing

/// The JSON dbq prints is an interface: scripts and dashboards read it. A listing and a
/// job result are pinned byte for byte here (from fixed inputs in `Pinned/`), so that a
/// refactoring that changes a key, a type or a null shows as a failed test.
@Suite("Pinned JSON: a listing and a job result, byte for byte")
struct PinnedOutputTests {
    var dbq: String { TestServices.dbqBinary }
    static let pinned = TestServices.projectRoot + "/Tests/dbqTests/Pinned/"

    func file(_ name: String) throws -> String { try String(contentsOfFile: Self.pinned + name, encoding: .utf8) }

    @Test("dbq backups list --json of a store holding one fixed manifest")
    func backupsList() async throws {
        let dir = TestServices.temporaryDirectory("dbq-pinned")
        let folder = dir + "/store/backups/main/20260101T030000Z-01940000-0000-7000-8000-000000000001"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try file("backup-manifest.json").write(toFile: folder + "/manifest.json", atomically: true, encoding: .utf8)
        try "storages:\n  archive: {url: \"file://\(dir)/store\"}\n".write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let r = try await runCommand(dbq, ["backups", "list", "--json", "--config", dir + "/dbq.yaml"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (try file("backups-list.json")), "\(r.stdout)")
    }

    @Test("the result of a migrate dry run (plan, findings, a version written as null)")
    func migrateResult() async throws {
        let db = try await ScratchDatabase.create("dbqt_pinned")
        defer { Task { await ScratchDatabase.drop(db) } }
        let dir = TestServices.temporaryDirectory("dbq-pinned")
        try FileManager.default.createDirectory(atPath: dir + "/mig", withIntermediateDirectories: true)
        for name in ["0001_accounts.up.sql", "0002_drop_email.up.sql"] {
            try file(name).write(toFile: dir + "/mig/" + name, atomically: true, encoding: .utf8)
        }
        let url = ScratchDatabase.server.replacingDatabase(db)
        try "databases:\n  main: \"\(url)\"\n".write(toFile: dir + "/dbq.yaml", atomically: true, encoding: .utf8)
        let r = try await runCommand(dbq, ["run", "migrate", "--database", "main", "--dir", dir + "/mig", "--dry-run", "--allow", "drop-column",
                                           "--allow", "create-index-without-concurrently", "--config", dir + "/dbq.yaml"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (try file("migrate-dry-run.json")), "\(r.stdout)")
    }
}
