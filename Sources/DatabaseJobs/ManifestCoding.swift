import Foundation

/// Which attempt of which job wrote an artefact.
public struct JobStamp: Codable, Sendable, Equatable {
    public var id: String
    public var attempt: Int
    public var fencingToken: Int64

    public init(id: String, attempt: Int, fencingToken: Int64) {
        self.id = id
        self.attempt = attempt
        self.fencingToken = fencingToken
    }
}

/// One data object: its name in the backup's folder, stored size and SHA-256.
public struct ManifestObject: Codable, Sendable, Equatable {
    public var name: String
    public var size: Int64
    public var sha256: String
    /// Bytes before compression: of the whole dump on the first object, 0 on the objects
    /// it continues in (one compressed stream cut at byte boundaries).
    public var rawSize: Int64

    public init(name: String, size: Int64, sha256: String, rawSize: Int64) {
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.rawSize = rawSize
    }
}

/// JSON as dbq writes manifests: sorted keys, ISO 8601 times with milliseconds.
public enum ManifestCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTime(date))
        }
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTime(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not an ISO 8601 time")
            }
            return date
        }
        return decoder
    }()

    public static func formatTime(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    public static func parseTime(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
