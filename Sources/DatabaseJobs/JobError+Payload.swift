import Codecs
import Queue

extension JobError {
    /// Reads a payload field with `parse`; what it refuses (a codec no one knows, a level
    /// out of range) is a permanent error, for no retry changes a payload.
    public static func payload<T>(_ parse: () throws -> T) throws(JobError) -> T {
        do { return try parse() } catch { throw .permanent("\(error)") }
    }
}

extension Codec {
    /// The codec a payload names (zstd when it names none).
    public static func payload(_ name: String?) throws(JobError) -> Codec {
        try JobError.payload { try Codec(parsing: name ?? "zstd") }
    }
}
