import ArgumentParser
import DBQCommand
import DBQSupport
import Foundation
import PostgresClient

/// Streams one `COPY … TO STDOUT` and reports its rate and this process's peak memory:
/// the check that memory stays flat however large the table.
struct BenchCopy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Stream a COPY TO STDOUT of N generated rows; print bytes, MB/s and peak RSS.")

    @Option(help: "PostgreSQL URL (default: $DBQ_DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "Rows to generate (about 210 bytes each).")
    var rows: Int = 1_000_000

    @Option(help: "Chunk size in KiB.")
    var chunkKiB: Int = 256

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() async throws {
        try await reportingFailures {
            guard let url = databaseURL ?? environment("DBQ_DATABASE_URL") else {
                throw ValidationError("pass --database-url or set DBQ_DATABASE_URL")
            }
            let db = try await PostgresConnection.connect(url, logger: makeLogger("dbq.bench"))
            let sql = "COPY (SELECT i, repeat('x', 200) FROM generate_series(1, \(rows)) AS i) TO STDOUT"
            var bytes = 0, lines = 0, largest = 0
            let started = ContinuousClock.now
            for try await chunk in db.copyOut(sql, chunkSize: chunkKiB << 10) {
                bytes += chunk.count
                largest = max(largest, chunk.count)
                lines += chunk.withUnsafeBufferPointer { buffer in buffer.reduce(0) { $0 &+ ($1 == 10 ? 1 : 0) } }
            }
            let seconds = (ContinuousClock.now - started).seconds
            let peak = ProcessStats.peakResidentBytes() ?? 0
            if json {
                print(#"{"rows":\#(lines),"bytes":\#(bytes),"largest_chunk":\#(largest),"seconds":\#(seconds),"peak_rss":\#(peak)}"#)
            } else {
                print(String(format: "COPY TO  %d rows, %@ in %.2f s: %.1f MB/s; largest chunk %@; peak RSS %@",
                             lines, formatBytes(Int64(bytes)), seconds, Double(bytes) / 1e6 / seconds,
                             formatBytes(Int64(largest)), formatBytes(Int64(peak))))
            }
        }
    }
}
