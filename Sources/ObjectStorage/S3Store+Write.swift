import DBQSupport
import Foundation

/// Writes one object from a stream: a single PUT when it fits in one part, otherwise a
/// multipart upload with several parts in flight, aborted if anything fails, and checked
/// by HEAD after completion (which `StagedWrite.commit` does, so that a caller may stream
/// the next object meanwhile).
struct MultipartWriter {
    let store: S3Store
    let key: String

    private var partSize: Int { store.configuration.partSize }

    /// Uploads every byte of `body`; the returned write completes the upload (or deletes
    /// the object, for a stream that fit in one PUT and is therefore already visible).
    func stage<S: AsyncSequence>(_ body: S) async throws -> StagedWrite where S.Element == [UInt8] {
        var source = PartSource(iterator: body.makeAsyncIterator(), partSize: partSize)
        let first = try await source.nextPart()
        guard source.mayHaveMore else {
            let info = try await putSingle(first)
            return StagedWrite(key: key, commit: { info }, discard: { [self] in
                try? await store.delete(key)
            })
        }
        let uploadID = try await create()
        let parts: [(Int, String)]
        let total: Int64
        do {
            (parts, total) = try await uploadParts(first: first, source: &source, uploadID: uploadID)
        } catch {
            await abort(uploadID: uploadID)
            throw error
        }
        return StagedWrite(key: key, commit: { [self] in
            var completed = false
            do {
                try await complete(uploadID: uploadID, parts: parts)
                completed = true
                guard let info = try await store.head(key) else {
                    throw ObjectStoreError(code: .integrity, message: "\(store.url)/\(key) is missing right after its upload completed", store: store.url, key: key)
                }
                guard info.size == total else {
                    throw ObjectStoreError(code: .integrity, message: "\(store.url)/\(key) holds \(info.size) bytes after upload, \(total) were sent", store: store.url, key: key)
                }
                return info
            } catch {
                // Once completed, the upload id is gone and the object visible: remove it.
                if completed { try? await store.delete(key) } else { await abort(uploadID: uploadID) }
                throw error
            }
        }, discard: { [self] in
            await abort(uploadID: uploadID)
        })
    }

    private func putSingle(_ bytes: [UInt8]) async throws -> ObjectInfo {
        let response = try await store.send("PUT", key: key, headers: store.configuration.serverSideEncryption?.headers ?? [], body: bytes, expect: [200])
        return store.info(key: key, response: response, size: Int64(bytes.count))
    }

    private func create() async throws -> String {
        let response = try await store.send("POST", key: key, query: [("uploads", "")],
                                            headers: [("Content-Type", "application/octet-stream")] + (store.configuration.serverSideEncryption?.headers ?? []),
                                            expect: [200])
        guard let id = XMLNode.parse(response.body)?["UploadId"], !id.isEmpty else {
            throw ObjectStoreError(code: .server, message: "S3 did not return an upload id for \(store.url)/\(key)", store: store.url, key: key)
        }
        return id
    }

    /// Uploads the parts holding at most `partConcurrency` of them in memory, the one being
    /// filled included: memory is `partSize × partConcurrency` whatever the stream's length.
    /// While the source is slower than S3 (a compressed dump) one part uploads as the next
    /// fills; when S3 is the slower, the parts wait in flight together.
    private func uploadParts<S: AsyncIteratorProtocol>(
        first: [UInt8], source: inout PartSource<S>, uploadID: String
    ) async throws -> ([(Int, String)], Int64) where S.Element == [UInt8] {
        let concurrency = store.configuration.partConcurrency
        var etags: [(Int, String)] = []
        var total: Int64 = 0
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            var next = first
            var number = 1
            var inFlight = 0
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
                group.addTask { (partNumber, try await uploadPart(body, number: partNumber, uploadID: uploadID)) }
                inFlight += 1
                number += 1
                guard source.mayHaveMore else { break }
                // Room for the part about to be filled.
                if inFlight >= concurrency {
                    etags.append(try await group.next()!)
                    inFlight -= 1
                }
                source.partSize = S3Configuration.partSize(forPart: number, base: partSize)
                next = try await source.nextPart()
                if next.isEmpty { break }
            }
            for try await etag in group { etags.append(etag) }
        }
        return (etags.sorted { $0.0 < $1.0 }, total)
    }

    private func uploadPart(_ body: [UInt8], number: Int, uploadID: String) async throws -> String {
        let response = try await store.send("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                            body: body, expect: [200])
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
