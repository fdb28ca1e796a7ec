import DBQSupport
import Logging

/// A storage location as people write it: `s3://bucket/prefix` or `file:///path`.
public enum StorageURL: Sendable, Equatable {
    case s3(bucket: String, prefix: String)
    case file(path: String)

    public init(_ text: String) throws(ObjectStoreError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("s3://") {
            let rest = trimmed.dropFirst("s3://".count)
            let bucket = rest.prefix(while: { $0 != "/" })
            guard !bucket.isEmpty else {
                throw ObjectStoreError(code: .invalidURL, message: "'\(trimmed)' names no bucket (expected s3://bucket/prefix)")
            }
            if bucket.contains("@") || bucket.contains(":") {
                throw ObjectStoreError(code: .invalidURL, message: "'\(Redaction.url(trimmed))' must not hold credentials or a port; set the endpoint separately and the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
            }
            let prefix = rest.dropFirst(bucket.count).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            self = .s3(bucket: String(bucket), prefix: prefix)
        } else if trimmed.hasPrefix("file://") {
            let path = String(trimmed.dropFirst("file://".count))
            guard path.hasPrefix("/") else {
                throw ObjectStoreError(code: .invalidURL, message: "'\(trimmed)' is not an absolute path (expected file:///absolute/path)")
            }
            self = .file(path: path)
        } else {
            throw ObjectStoreError(code: .invalidURL, message: "'\(Redaction.url(trimmed))' is not a storage URL (expected s3://bucket/prefix or file:///path)")
        }
    }

    /// Splits an object URL (`s3://bucket/dir/key`) into the store of its directory and
    /// the key's last segment, for commands that name one object.
    public static func splitObject(_ text: String) throws(ObjectStoreError) -> (store: StorageURL, key: String) {
        let url = try StorageURL(text)
        switch url {
        case .s3(let bucket, let prefix):
            guard let slash = prefix.lastIndex(of: "/") else {
                guard !prefix.isEmpty else { throw ObjectStoreError(code: .invalidURL, message: "'\(text)' names a bucket, not an object") }
                return (.s3(bucket: bucket, prefix: ""), prefix)
            }
            return (.s3(bucket: bucket, prefix: String(prefix[..<slash])), String(prefix[prefix.index(after: slash)...]))
        case .file(let path):
            let directory = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            guard !name.isEmpty, !path.hasSuffix("/") else { throw ObjectStoreError(code: .invalidURL, message: "'\(text)' names a directory, not an object") }
            return (.file(path: directory), name)
        }
    }
}

extension StorageURL: CustomStringConvertible {
    /// The URL as people write it (it never holds secrets).
    public var description: String {
        switch self {
        case .s3(let bucket, let prefix): "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)")
        case .file(let path): "file://\(path)"
        }
    }
}

/// The settings an S3 store needs besides its URL.
public struct S3Options: Sendable {
    public var endpoint: String?
    public var region: String
    public var addressing: S3Configuration.Addressing?
    public var credentials: AWSCredentials?
    public var partSize: Int
    public var partConcurrency: Int
    public var serverSideEncryption: S3Configuration.ServerSideEncryption?

    public init(endpoint: String? = nil, region: String = "us-east-1", addressing: S3Configuration.Addressing? = nil,
                credentials: AWSCredentials? = nil, partSize: Int = S3Configuration.defaultPartSize, partConcurrency: Int = 2) {
        self.endpoint = endpoint
        self.region = region
        self.addressing = addressing
        self.credentials = credentials
        self.partSize = partSize
        self.partConcurrency = partConcurrency
    }
}

extension StorageURL {
    /// Opens the store this URL names. S3 credentials come from `options`, else from the
    /// environment; their absence is an error that says where to put them.
    public func open(options: S3Options = S3Options(), logger: Logger) throws -> any ObjectStore {
        switch self {
        case .file(let path):
            return try LocalStore(root: path)
        case .s3(let bucket, let prefix):
            guard let credentials = options.credentials ?? AWSCredentials.fromEnvironment() else {
                throw ObjectStoreError(
                    code: .configuration,
                    message: "no S3 credentials for s3://\(bucket): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)")
            }
            var configuration = S3Configuration(
                endpoint: options.endpoint, region: options.region, bucket: bucket, prefix: prefix,
                addressing: options.addressing, credentials: credentials, partSize: options.partSize,
                partConcurrency: options.partConcurrency)
            configuration.serverSideEncryption = options.serverSideEncryption
            return try S3Store(configuration, logger: logger)
        }
    }
}

import Foundation
