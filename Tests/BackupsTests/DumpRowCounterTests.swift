@testable import Backups
@testable import DatabaseJobs
import DBQSupport
import Foundation
import JobTestSupport
import PostgresClient
import Testing

/// Builds pg_dump custom-format archives by hand, for the versions and shapes the local
/// pg_dump does not write.
private struct ArchiveWriter {
    var version: (UInt8, UInt8) = (1, 14)
    var compression = 0
    var bytes: [UInt8] = []

    mutating func int(_ value: Int) {
        bytes.append(value < 0 ? 1 : 0)
        var v = abs(value)
        for _ in 0..<4 {
            bytes.append(UInt8(v & 0xFF))
            v >>= 8
        }
    }

    mutating func string(_ text: String?) {
        guard let text else { return int(-1) }
        int(text.utf8.count)
        bytes += Array(text.utf8)
    }

    mutating func header(tocCount: Int) {
        bytes += Array("PGDMP".utf8) + [version.0, version.1, 0, 4, 8, 1]
        if version.1 >= 15 { bytes.append(UInt8(compression)) } else { int(compression) }
        for v in [1, 2, 3, 22, 10, 126, 0] { int(v) }
        string("db")
        string("15.8")
        string("15.8")
        int(tocCount)
    }

    mutating func entry(id: Int, desc: String, schema: String?, tag: String, deps: [Int] = []) {
        int(id)
        int(desc == "TABLE DATA" ? 1 : 0)
        string("0")
        string("0")
        string(tag)
        string(desc)
        int(desc == "TABLE DATA" ? 3 : 2)
        string(desc == "TABLE DATA" ? "" : "CREATE …;\n")
        string("")
        string(desc == "TABLE DATA" ? "COPY x FROM stdin;\n" : nil)
        string(schema)
        string(nil)
        if version.1 >= 14 { string("heap") }
        if version.1 >= 16 { int(114) }
        string("postgres")
        string("false")
        for d in deps { string(String(d)) }
        string(nil)
        bytes += [1] + [UInt8](repeating: 0, count: 8)  // data offset: not set
    }

    mutating func data(id: Int, chunks: [String]) {
        bytes.append(1)
        int(id)
        for c in chunks {
            int(c.utf8.count)
            bytes += Array(c.utf8)
        }
        int(0)
    }

    mutating func blobs(id: Int, blobs: [(Int, String)]) {
        bytes.append(3)
        int(id)
        for (oid, content) in blobs {
            int(oid)
            int(content.utf8.count)
            bytes += Array(content.utf8)
            int(0)
        }
        int(0)
    }
}

private func count(_ bytes: [UInt8], pieces: Int = 0) -> DumpRowCounter {
    let counter = DumpRowCounter()
    bytes.withUnsafeBytes { all in
        if pieces <= 0 {
            counter.scan(all)
        } else {
            var i = 0
            while i < all.count {
                let n = min(pieces, all.count - i)
                counter.scan(UnsafeRawBufferPointer(rebasing: all[i..<i + n]))
                i += n
            }
        }
    }
    counter.finish()
    return counter
}

private func key(_ schema: String, _ name: String) -> DumpRowCounter.TableKey { .init(schema: schema, name: name) }

@Suite("Row counts read from the dump")
struct DumpRowCounterTests {
    static func sample(version: (UInt8, UInt8)) -> [UInt8] {
        var w = ArchiveWriter(version: version)
        w.header(tocCount: 5)
        w.entry(id: 1, desc: "ENCODING", schema: nil, tag: "ENCODING")
        w.entry(id: 7, desc: "TABLE", schema: "public", tag: "t", deps: [1])
        w.entry(id: 8, desc: "TABLE DATA", schema: "public", tag: "t", deps: [7, 1])
        w.entry(id: 9, desc: "TABLE DATA", schema: "Odd \"Schema\"", tag: "empty")
        w.entry(id: 10, desc: "BLOBS", schema: nil, tag: "BLOBS")
        // Rows split across chunks, a value that is a lone \. (escaped), the end line.
        w.data(id: 8, chunks: ["1\tx\n", "2\ty\\nz\n3\t", "\\N\n", "\\\\.\n", "\\.\n\n\n"])
        w.data(id: 9, chunks: ["\\.\n\n\n"])
        w.blobs(id: 10, blobs: [(16384, "line one\nline two\n"), (16385, "\\.\n\n\n")])
        return w.bytes
    }

    @Test("versions 1.14 to 1.16: rows per table, whatever the pieces' sizes", arguments: [(UInt8(14)), 15, 16], [0, 1, 2, 3, 5, 7, 64])
    func versions(minor: UInt8, pieces: Int) throws {
        let counter = count(Self.sample(version: (1, minor)), pieces: pieces)
        #expect(counter.failure == nil)
        let rows = try #require(counter.rows)
        #expect(rows == [key("public", "t"): 4, key("Odd \"Schema\"", "empty"): 0])
    }

    @Test("data without an end line (newer pg_dump) counts every line")
    func noEndLine() throws {
        var w = ArchiveWriter(version: (1, 16))
        w.header(tocCount: 1)
        w.entry(id: 3, desc: "TABLE DATA", schema: "s", tag: "t")
        w.data(id: 3, chunks: ["a\n", "b\n", "\\\\.\n"])
        #expect(try #require(count(w.bytes).rows) == [key("s", "t"): 3])
    }

    @Test("what cannot be read is refused with a reason, never guessed", arguments: [
        ("not an archive", "not a pg_dump custom-format archive"),
        ("version", "archive version 1.17"),
        ("compressed", "compressed"),
        ("truncated", "ended in the middle"),
        ("block", "unknown data block type 9"),
    ])
    func refusals(kind: String, reason: String) {
        var bytes: [UInt8]
        switch kind {
        case "not an archive": bytes = Array("PGDMQ and more".utf8)
        case "version": bytes = Self.sample(version: (1, 17))
        case "compressed":
            var w = ArchiveWriter(version: (1, 14), compression: 6)
            w.header(tocCount: 0)
            bytes = w.bytes
        case "truncated": bytes = Array(Self.sample(version: (1, 15)).dropLast(9))
        default: bytes = Self.sample(version: (1, 15)) + [9]
        }
        let counter = count(bytes)
        #expect(counter.rows == nil)
        #expect(counter.failure?.contains(reason) == true, "\(counter.failure ?? "no failure")")
    }

    @Test("newlines are counted by memchr and by words exactly as one at a time, sparse or dense")
    func newlineCounting() {
        var rng = SplitMix64(seed: 3)
        for length in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4095, 4096, 4097, 20_000] {
            // Dense (a newline in every sixth byte or so), sparse (one in 500), and none.
            let dense = rng.bytes(length).map { [0x0A, 0x8A, 0x0B, 0x00, 0xFF, $0][Int($0 % 6)] }
            let sparse = rng.bytes(length).map { $0 == 7 && Bool.random() ? 0x0A : ($0 == 0x0A ? 0x41 : $0) }
            let mixed = dense.prefix(length / 2) + sparse.suffix(length - length / 2)
            for bytes in [dense, sparse, Array(mixed), [UInt8](repeating: 0x0A, count: length)] {
                let naive = bytes.filter { $0 == 0x0A }.count
                #expect(bytes.withUnsafeBytes { DumpRowCounter.countNewlines($0) } == naive)
                #expect(bytes.withUnsafeBytes { DumpRowCounter.countNewlinesByWords($0) } == naive)
            }
        }
    }

    @Test("a real pg_dump: every table's rows equal count(*), in pieces of any size")
    func realDump() async throws {
        let name = try await Fixtures.makeSource(rows: 3000, randomMiB: 1)
        defer { Task { await Fixtures.drop(name) } }
        let db = try await PostgresConnection.connect(Fixtures.url(name).raw, logger: Fixtures.logger)
        _ = try await db.execute(#"""
            CREATE TABLE lines (id int, body text);
            INSERT INTO lines VALUES (1, E'one\ntwo'), (2, '\.'), (3, E'\\.'), (4, E'\r\n'), (5, NULL), (6, '');
            CREATE TABLE measurements (at date, v int) PARTITION BY RANGE (at);
            CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            INSERT INTO measurements SELECT '2025-06-01'::date + g, g FROM generate_series(1, 400) g;
            CREATE UNLOGGED TABLE scratch AS SELECT g AS id FROM generate_series(1, 77) g;
            SELECT lo_from_bytea(0, '\x0a0a0a'::bytea);
            """#)
        let expected = try await TableInventory.count(db)
        await db.close()
        #expect(expected.count >= 8)

        let (conninfo, env) = Fixtures.url(name).childProcessArguments()
        let dump = try Subprocess(try await JobFixtures.pgDump(), arguments: ["--format=custom", "--compress=0", "--no-password", "--dbname=\(conninfo)"],
                                  environment: ProcessInfo.processInfo.environment.merging(env) { $1 }, pipeStdout: true)
        let bytes = try await BlockingLane.detached { () throws -> [UInt8] in
            var all: [UInt8] = []
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
            defer { buffer.deallocate() }
            while true {
                let n = try dump.readStdout(into: buffer)
                if n == 0 { return all }
                all += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            }
        }
        #expect(await dump.wait() == 0)
        for pieces in [0, 1, 13, 4096] {
            let counter = count(bytes, pieces: pieces)
            #expect(counter.failure == nil)
            let rows = try #require(counter.rows)
            for table in expected {
                #expect(rows[key(table.schema, table.name)] == table.rows, "\(table.qualifiedName) in pieces of \(pieces)")
            }
        }
    }
}
