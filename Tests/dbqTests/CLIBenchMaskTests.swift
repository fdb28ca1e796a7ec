import DBQTestSupport
import Testing

/// `dbq bench mask` measures the masking that exports do; its output digest pins that
/// masking end to end (row transformer, fake email, hash, redact's emails and numbers), so
/// a faster version cannot mask differently from an older one.
@Suite("dbq bench mask: the export bench's masking, pinned by its digest")
struct CLIBenchMaskTests {
    @Test("20,000 rows of the PII bench masked to exactly the bytes every version gave")
    func pinned() async throws {
        let result = try await runCommand(TestServices.dbqBinary, ["bench", "mask", "--rows", "20000", "--runs", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("output SHA-256 4a06390ed733df47e6d4e8e44b1b4173076f238c7ded244c901b149209152bc7"), "\(result.stdout)")
    }

    @Test("a row count out of range is named, with the range")
    func badRows() async throws {
        let result = try await runCommand(TestServices.dbqBinary, ["bench", "mask", "--rows", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--rows must be from 1 to 100000000"), "\(result.stderr)")
    }
}
