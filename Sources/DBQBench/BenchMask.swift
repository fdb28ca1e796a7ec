import Anonymization
import ArgumentParser
import Crypto
import DBQCommand
import Foundation

/// The masking rules alone, on one thread, with no database and no disk: what a row of
/// the export bench's PII table costs to mask, and a digest of the output that must not
/// change from one version to the next.
struct BenchMask: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask",
        abstract: "Masking CPU per row on one thread (the export bench's policy and row shape), and a digest of the output.",
        discussion: """
            Rows shaped like 'dbq bench export's PII table (id, email, name, phone, city, born, \
            note quoting an email, a ticket number and a phone number) are made in memory, a \
            chunk at a time, and masked by the same policy (name: hash, email: fake email, \
            note: redact) with a fixed key. Only the masking is timed (CPU time of this \
            thread); medians of --runs. The SHA-256 of the masked text is printed: equal \
            digests across versions mean byte for byte the same masking.
            """)

    @Option(help: "Rows per run.")
    var rows = 2_000_000

    @Option(help: "Runs (medians).")
    var runs = 3

    func validate() throws {
        if rows < 1 || rows > 100_000_000 { throw ValidationError("--rows must be from 1 to 100000000") }
        if runs < 1 || runs > 99 { throw ValidationError("--runs must be from 1 to 99") }
    }

    func run() async throws {
        try await reportingFailures {
            let policy = try AnonymizationPolicy.parse(BenchExport.policy, file: "bench policy")
            let catalog = TableCatalog(tables: [.init(schema: "public", name: "people", columns: [
                .init(name: "id", type: "bigint", notNull: true), .init(name: "email", type: "text", notNull: true),
                .init(name: "name", type: "text", notNull: false), .init(name: "phone", type: "text", notNull: false),
                .init(name: "city", type: "text", notNull: false), .init(name: "born", type: "date", notNull: false),
                .init(name: "note", type: "text", notNull: false)])], foreignKeys: [])
            let plan = try policy.plan(for: catalog)
            let transformer = RowTransformer(columns: plan.tables["public.people"]!, key: try AnonymizationKey("dbq-bench-key-0123456789abcdef"))
            emit("dbq bench mask — \(rows) rows a run, \(runs) run(s), one thread; 3 of 7 columns masked (hash, fake email, redact)")
            var seconds: [Double] = []
            var digest = ""
            var inputBytes = 0
            for _ in 0..<runs {
                let (cpu, bytes, sha) = try measure(transformer)
                seconds.append(cpu)
                inputBytes = bytes
                digest = sha
            }
            let s = median(seconds)
            emit(String(format: "  %.3f s CPU (median), %.0f ns a row, %.1f MB/s of COPY text; output SHA-256 %@",
                        s, s * 1e9 / Double(rows), Double(inputBytes) / 1e6 / s, digest))
        }
    }

    /// One run: CPU seconds spent masking, the COPY text's size, the output's digest.
    private func measure(_ transformer: RowTransformer) throws -> (Double, Int, String) {
        var hasher = SHA256()
        var input: [UInt8] = []
        var out: [UInt8] = []
        var cpu = 0.0
        var bytes = 0
        var next = 1
        while next <= rows {
            input.removeAll(keepingCapacity: true)
            let last = min(rows, next + 9_999)
            for i in next...last { Self.appendRow(i, into: &input) }
            next = last + 1
            bytes += input.count
            out.removeAll(keepingCapacity: true)
            let start = Self.threadCPU()
            _ = try input.withUnsafeBytes { try transformer.transform(lines: $0, into: &out) }
            cpu += Self.threadCPU() - start
            hasher.update(data: out)
        }
        return (cpu, bytes, hasher.finalize().map { String(format: "%02x", $0) }.joined())
    }

    /// Row `i` in the shape 'dbq bench export' generates (the name is two hex words).
    static func appendRow(_ i: Int, into out: inout [UInt8]) {
        let digits = String(i % 10_000_000)
        let phone = "+49 30 " + String(repeating: "0", count: 7 - digits.count) + digits
        let email = "person\(i)@mail\(i % 97).example"
        let h = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15
        let name = "C" + String(h >> 36, radix: 16) + " E" + String(h & 0xFFFF_FFFF, radix: 16)
        let line = "\(i)\t\(email)\t\(name)\t\(phone)\tCity \(i % 5000)\t1990-01-\(10 + i % 18)\t"
            + "Ticket \(i): customer wrote from \(email), call back on \(phone) please\n"
        out.append(contentsOf: line.utf8)
    }

    static func threadCPU() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
