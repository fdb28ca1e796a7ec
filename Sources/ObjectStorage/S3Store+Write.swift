import DBQSupport
import Foundation

/// Writes one object from a stream: a single PUT when it fits in one part, otherwise a
/// multipart upload with several parts in flight, aborted if anything fails, and checked
/// by HEAD after completion.
struct MultipartWriter {
    let store: S3Store
    let key: String

    private var partSize: Int { store.configuration.partSize }

    func write<S: AsyncSequence>(_ body: S) async throws -> ObjectInfo where S.Element == [UInt8] {
        var source = PartSource(iterator: body.makeAsyncIterator(), partSize: partSize)
        let first = try await source.nextPart()
        guard source.mayHaveMore else {
            return try await putSingle(first)
        }
        let uploadID = try await create()
        do {
            let (parts, total) = try await uploadParts(first: first, source: &source, uploadID: uploadID)
            try await complete(uploadID: uploadID, parts: parts)
            guard let info = try await store.head(key) else {
                throw ObjectStoreError(code: .integrity, message: "\(store.url)/\(key) is missing right after its upload completed", store: store.url, key: key)
            }
            guard info.size == total else {
                throw ObjectStoreError(code: .integrity, message: "\(store.url)/\(key) holds \(info.size) bytes after upload, \(total) were sent", store: store.url, key: key)
            }
            return info
        } catch {
            await abort(uploadID: uploadID)
            throw error
        }
    }

    private func putSingle(_ bytes: [UInt8]) async throws -> ObjectInfo {
        let response = try await store.send("PUT", key: key, body: bytes, expect: [200])
        return store.info(key: key, response: response, size: Int64(bytes.count))
    }

    private func create() async throws -> String {
        let response = try await store.send("POST", key: key, query: [("uploads", "")],
                                            headers: [("Content-Type", "application/octet-stream")], expect: [200])
        guard let id = XMLNode.parse(response.body)?["UploadId"], !id.isEmpty else {
            throw ObjectStoreError(code: .server, message: "S3 did not return an upload id for \(store.url)/\(key)", store: store.url, key: key)
        }
        return id
    }

    /// Uploads the parts, at most `partConcurrency` at once. A part cut while every upload
    /// slot is busy waits in the spool file (`PartSpool`), not in memory, so the source
    /// never waits for a slower S3 until `spoolLimit` bytes wait: memory stays
    /// `partConcurrency + 1` parts (those uploading and the one being filled) whatever the
    /// stream's length and S3's speed. With the spool off or full, the source waits.
    private func uploadParts<S: AsyncIteratorProtocol>(
        first: [UInt8], source: inout PartSource<S>, uploadID: String
    ) async throws -> ([(Int, String)], Int64) where S.Element == [UInt8] {
        let slots = store.configuration.partConcurrency
        let spool = PartSpool(limit: store.configuration.spoolLimit, directory: store.configuration.spoolDirectory)
        var etags: [(Int, String)] = []
        var total: Int64 = 0
        var warned = false
        try await withThrowingTaskGroup(of: [(Int, String)].self) { group in
            // One upload slot: its own part, then spooled parts while any wait.
            func startUploader(_ part: (body: [UInt8], number: Int)?) {
                group.addTask {
                    var done: [(Int, String)] = []
                    if let part { done.append((part.number, try await uploadPart(part.body, number: part.number, uploadID: uploadID))) }
                    while let entry = spool.next() {
                        let body = try await spool.read(entry)
                        done.append((entry.number, try await uploadPart(body, number: entry.number, uploadID: uploadID,
                                                                        payloadHash: SigV4Signer.hex(entry.digest))))
                    }
                    return done
                }
            }
            var next = first
            var number = 1
            while true {
                if number > S3Configuration.maximumParts {
                    throw ObjectStoreError(
                        code: .tooLarge,
                        message: "\(store.url)/\(key) needs more than \(S3Configuration.maximumParts) parts (starting at \(partSize) bytes, doubling every \(S3Configuration.partsPerSizeStep)); raise the part size",
                        store: store.url, key: key)
                }
                let body = next
                let partNumber = number
                total += Int64(body.count)
                number += 1
                placing: while true {
                    switch spool.place(length: body.count, slots: slots) {
                    case .upload:
                        startUploader((body, partNumber))
                        break placing
                    case .spool(let offset):
                        if await spool.write(body, number: partNumber, offset: offset) {
                            // The last upload task may have ended just before the part was queued.
                            if spool.claimIdleSlot(slots: slots) { startUploader(nil) }
                            break placing
                        }
                        if !warned, let why = spool.failure {
                            warned = true
                            store.logger.warning("upload spool off for this object; parts wait in memory for S3", metadata: [
                                "s3.key": "\(key)", "error": "\(why)",
                            ])
                        }
                        etags += try await group.next() ?? []
                    case .wait:
                        // Every slot busy and the spool full (or off): a slot frees once its
                        // task has nothing more to upload.
                        etags += try await group.next() ?? []
                    }
                }
                guard source.mayHaveMore else { break }
                source.partSize = S3Configuration.partSize(forPart: number, base: partSize)
                next = try await source.nextPart()
                if next.isEmpty { break }
            }
            for try await done in group { etags += done }
        }
        return (etags.sorted { $0.0 < $1.0 }, total)
    }

    private func uploadPart(_ body: [UInt8], number: Int, uploadID: String, payloadHash: String? = nil) async throws -> String {
        let response = try await store.send("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                            body: body, payloadHash: payloadHash, expect: [200])
        guard let etag = response.headers["etag"] else {
            throw ObjectStoreError(code: .server, message: "S3 returned no ETag for part \(number) of \(store.url)/\(key)", store: store.url, key: key)
        }
        return etag
    }

    private func complete(uploadID: String, parts: [(Int, String)]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (number, etag) in parts {
            xml += "<Part><PartNumber>\(number)</PartNumber><ETag>\(etag.xmlEscaped)</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let response = try await store.send("POST", key: key, query: [("uploadId", uploadID)],
                                            headers: [("Content-Type", "application/xml")], body: Array(xml.utf8), expect: [200])
        // S3 may answer 200 and put the error in the body.
        if let root = XMLNode.parse(response.body), root.name == "Error" {
            throw store.error(HTTPResponse(status: 500, headers: response.headers, body: response.body), method: "POST", key: key)
        }
    }

    private func abort(uploadID: String) async {
        do {
            _ = try await store.send("DELETE", key: key, query: [("uploadId", uploadID)], expect: [200, 204, 404])
        } catch {
            store.logger.warning("could not abort multipart upload; retention will remove it", metadata: [
                "s3.bucket": "\(store.configuration.bucket)", "s3.key": "\(key)", "error": "\(error)",
            ])
        }
    }
}

/// Cuts a stream of chunks of any size into parts of exactly `partSize` bytes (the last
/// one shorter).
struct PartSource<Iterator: AsyncIteratorProtocol> where Iterator.Element == [UInt8] {
    var iterator: Iterator
    /// May change between parts (see `S3Configuration.partSize(forPart:base:)`).
    var partSize: Int
    var leftover: ArraySlice<UInt8> = []
    /// False once the stream has ended.
    private(set) var mayHaveMore = true

    init(iterator: Iterator, partSize: Int) {
        self.iterator = iterator
        self.partSize = partSize
    }

    /// The next part: `partSize` bytes, or fewer at the end of the stream.
    mutating func nextPart() async throws -> [UInt8] {
        var part: [UInt8] = []
        part.reserveCapacity(partSize)
        while part.count < partSize {
            if leftover.isEmpty {
                guard let chunk = try await iterator.next() else {
                    mayHaveMore = false
                    break
                }
                leftover = chunk[...]
            }
            let take = min(partSize - part.count, leftover.count)
            part.append(contentsOf: leftover.prefix(take))
            leftover = leftover.dropFirst(take)
        }
        if part.count == partSize && leftover.isEmpty && mayHaveMore {
            // Peek: a stream that ends exactly on a part boundary is still one part.
            if let chunk = try await iterator.next() { leftover = chunk[...] } else { mayHaveMore = false }
        }
        return part
    }
}
