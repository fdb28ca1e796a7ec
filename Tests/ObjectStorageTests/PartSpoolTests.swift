import Crypto
import DBQSupport
import DBQTestSupport
import Foundation
import Logging
@testable import ObjectStorage
import Testing

@Suite("Upload spool: parts wait on disk, not in memory, while S3 is the slower")
struct PartSpoolTests {
    func part(_ n: Int, size: Int = 1000) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ n) } }

    @Test("slots first, then the spool up to its limit, then wait; parts come back in order, byte for byte, and free their room")
    func placement() async throws {
        let spool = PartSpool(limit: 2500, directory: TestServices.temporaryDirectory("dbq-spool"))
        #expect(spool.place(length: 1000, slots: 2) == .upload)
        #expect(spool.place(length: 1000, slots: 2) == .upload)
        #expect(spool.place(length: 1000, slots: 2) == .spool(offset: 0))
        #expect(await spool.write(part(3), number: 3, offset: 0))
        #expect(spool.place(length: 1000, slots: 2) == .spool(offset: 1000))
        #expect(await spool.write(part(4), number: 4, offset: 1000))
        // 2,000 of 2,500 bytes wait: a third part would pass the limit.
        #expect(spool.place(length: 1000, slots: 2) == .wait)
        // Both slots busy: no idle slot to claim for the queued parts.
        #expect(!spool.claimIdleSlot(slots: 2))
        let first = try #require(spool.next())
        #expect(first.number == 3)
        #expect(try await spool.read(first) == part(3))
        #expect(spool.place(length: 1000, slots: 2) == .spool(offset: 2000))
        #expect(await spool.write(part(5), number: 5, offset: 2000))
        let second = try #require(spool.next())
        #expect(second.number == 4)
        #expect(try await spool.read(second) == part(4))
        let third = try #require(spool.next())
        #expect(try await spool.read(third) == part(5))
        // Nothing left: the slot is given back; the other slot's task ends the same way.
        #expect(spool.next() == nil)
        #expect(spool.next() == nil)
        #expect(spool.place(length: 1000, slots: 2) == .upload)
    }

    @Test("a part queued after every upload task ended is claimed by a new task")
    func idleSlot() async throws {
        let spool = PartSpool(limit: 1 << 20, directory: TestServices.temporaryDirectory("dbq-spool"))
        #expect(spool.place(length: 10, slots: 1) == .upload)
        #expect(spool.place(length: 10, slots: 1) == .spool(offset: 0))
        // The one task finishes its part and finds the queue empty before the write lands.
        #expect(spool.next() == nil)
        #expect(await spool.write(part(2, size: 10), number: 2, offset: 0))
        #expect(spool.claimIdleSlot(slots: 1))
        #expect(try #require(spool.next()).number == 2)
    }

    @Test("off (limit 0) or unwritable: nothing is spooled, the writer waits; the failure is named")
    func offOrBroken() async throws {
        let off = PartSpool(limit: 0, directory: "/tmp")
        #expect(off.place(length: 10, slots: 1) == .upload)
        #expect(off.place(length: 10, slots: 1) == .wait)
        let broken = PartSpool(limit: 1 << 20, directory: "/nonexistent/dbq-spool")
        #expect(broken.place(length: 10, slots: 1) == .upload)
        #expect(broken.place(length: 10, slots: 1) == .spool(offset: 0))
        #expect(await broken.write(part(1, size: 10), number: 2, offset: 0) == false)
        #expect(broken.failure?.contains("/nonexistent/dbq-spool") == true)
        #expect(broken.place(length: 10, slots: 1) == .wait)
    }

    @Test("the spool file is unlinked at once: nothing is left in its directory")
    func unlinked() async throws {
        let directory = TestServices.temporaryDirectory("dbq-spool")
        let spool = PartSpool(limit: 1 << 20, directory: directory)
        _ = spool.place(length: 10, slots: 0)
        #expect(await spool.write(part(1, size: 10), number: 1, offset: 0))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    static func store(concurrency: Int, spoolLimit: Int64, directory: String) throws -> S3Store {
        try S3Store(S3Configuration(
            endpoint: TestServices.s3Endpoint, bucket: TestServices.s3Bucket, prefix: "spool-\(UUID().uuidString)",
            credentials: AWSCredentials(accessKeyID: TestServices.s3AccessKey, secretAccessKey: TestServices.s3SecretKey),
            partSize: 5 << 20, partConcurrency: concurrency, spoolLimit: spoolLimit, spoolDirectory: directory), logger: Logger(label: "test.spool"))
    }

    @Test("on a real S3 server: one upload slot, the spool on, off, too small or unwritable: the object is the stream, byte for byte",
          arguments: [(Int64(1) << 30, "tmp"), (0, "tmp"), (Int64(6) << 20, "tmp"), (Int64(1) << 30, "/nonexistent/dbq-spool")])
    func realUploads(limit: Int64, directory: String) async throws {
        let dir = directory == "tmp" ? TestServices.temporaryDirectory("dbq-spool") : directory
        let store = try Self.store(concurrency: 1, spoolLimit: limit, directory: dir)
        // 23 MiB in 1 MiB chunks: five parts, cut much faster than one upload takes.
        var data: [UInt8] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<(23 << 10) { data += (0..<1024).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let chunks = stride(from: 0, to: data.count, by: 1 << 20).map { Array(data[$0..<min(data.count, $0 + (1 << 20))]) }
        let info = try await store.put("spooled.bin", from: ByteStream.chunks(chunks))
        #expect(info.size == Int64(data.count))
        let back = try await store.getBytes("spooled.bin")
        #expect(back.count == data.count)
        #expect(SHA256.hash(data: back) == SHA256.hash(data: data))
        if directory == "tmp" { #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty) }
    }
}
