import Foundation

/// A multipart upload that was started and neither completed nor aborted.
public struct PendingUpload: Sendable, Equatable {
    public var key: String
    public var uploadID: String
    public var initiated: Date?
}

extension S3Store {
    /// Multipart uploads in progress (or abandoned by a crashed writer) under `prefix`.
    public func listUploads(prefix: String = "") async throws -> [PendingUpload] {
        var uploads: [PendingUpload] = []
        var keyMarker: String?
        var idMarker: String?
        repeat {
            var query = [("uploads", ""), ("prefix", storedKey(prefix, allowEmpty: true))]
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let idMarker { query.append(("upload-id-marker", idMarker)) }
            let response = try await send("GET", key: nil, query: query, expect: [200])
            guard let root = XMLNode.parse(response.body) else {
                throw ObjectStoreError(code: .server, message: "S3 list of uploads in \(url) returned a body that is not XML", store: url)
            }
            for upload in root.all("Upload") {
                guard let stored = upload["Key"], let key = relativeKey(stored), let id = upload["UploadId"] else { continue }
                uploads.append(PendingUpload(key: key, uploadID: id, initiated: upload["Initiated"].flatMap(Self.parseISODate)))
            }
            if root["IsTruncated"] == "true" {
                keyMarker = root["NextKeyMarker"]
                idMarker = root["NextUploadIdMarker"]
            } else {
                keyMarker = nil
            }
        } while keyMarker != nil
        return uploads
    }

    /// Aborts a multipart upload, freeing its parts.
    public func abortUpload(_ upload: PendingUpload) async throws {
        _ = try await send("DELETE", key: upload.key, query: [("uploadId", upload.uploadID)], expect: [200, 204, 404])
    }
}

extension S3Store {
    public func abandonedWrites(prefix: String, olderThan age: TimeInterval, now: Date) async throws -> [AbandonedWrite] {
        try await listUploads(prefix: prefix).compactMap { upload in
            // An upload without an initiation time is kept: it might be fresh.
            guard let initiated = upload.initiated, now.timeIntervalSince(initiated) > age else { return nil }
            return AbandonedWrite(key: upload.key, started: initiated, handle: upload.uploadID)
        }
    }

    public func discard(_ write: AbandonedWrite) async throws {
        try await abortUpload(PendingUpload(key: write.key, uploadID: write.handle, initiated: write.started))
    }
}
