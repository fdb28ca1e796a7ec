/// How the bytes of an artefact are compressed: `zstd` (the default), `gzip` or `none`.
public enum Codec: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case zstd, gzip, none

    public var description: String { rawValue }

    /// The usual file extension, without the dot (`zst`, `gz`; empty for `none`).
    public var fileExtension: String {
        switch self {
        case .zstd: "zst"
        case .gzip: "gz"
        case .none: ""
        }
    }

    /// zstd 1: measured on pgbench scale 50 with 100 MiB of random bytea (`dbq bench
    /// backup`), level 1 keeps up with pg_dump and gives a smaller output than level 3
    /// (111.0 against 114.0 MB) in 6.9 s instead of 10.5 s to S3: the dump's redundancy
    /// is found at any level, and its random part compresses at none.
    public var defaultLevel: Int {
        switch self {
        case .zstd: 1
        case .gzip: 6
        case .none: 0
        }
    }

    public var levels: ClosedRange<Int> {
        switch self {
        case .zstd: 1...19
        case .gzip: 1...9
        case .none: 0...0
        }
    }

    /// Reads a codec name as a user wrote it.
    public init(parsing text: String) throws(CodecError) {
        guard let codec = Codec(rawValue: text.lowercased()) else {
            throw CodecError("unknown codec '\(text)'; use one of: \(Codec.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = codec
    }

    /// The level to use: `level` if given and in range, else the codec's default.
    public func checkedLevel(_ level: Int?) throws(CodecError) -> Int {
        guard let level else { return defaultLevel }
        if self == .none { return 0 }
        guard levels.contains(level) else {
            throw CodecError("\(rawValue) level \(level) is out of range; use \(levels.lowerBound) to \(levels.upperBound)")
        }
        return level
    }
}

/// A codec could not be used, or the bytes it was given are not what it makes.
public struct CodecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
