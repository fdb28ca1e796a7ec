import ArgumentParser
import DBQSupport
import Foundation
import Logging
import ObjectStorage

/// Runs a command body and turns any failure into one line on stderr and exit code 1:
/// never a stack trace.
public func reportingFailures(_ body: () async throws -> Void) async throws {
    MemoryTuning.applied
    OpenSSLExit.disableCleanup
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as CleanExit {
        throw error
    } catch {
        FileHandle.standardError.write(Data("dbq: error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// A logger that writes to stderr at `DBQ_LOG_LEVEL` (default: warning).
public func makeLogger(_ label: String) -> Logger {
    LoggingBootstrap.once
    return Logger(label: label)
}

public enum LoggingBootstrap {
    public static let once: Void = {
        let level = ProcessInfo.processInfo.environment["DBQ_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }()
}

/// The environment variable's value, if set and not empty.
public func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}

/// Options every command that touches S3 takes.
public struct S3OptionGroup: ParsableArguments {
    public init() {}

    @Option(name: .customLong("endpoint"), help: "S3 endpoint, http(s)://host[:port] (default: $DBQ_S3_ENDPOINT, else AWS).")
    public var endpoint: String?

    @Option(help: "S3 region.")
    public var region: String = environment("AWS_DEFAULT_REGION") ?? environment("AWS_REGION") ?? "us-east-1"

    @Option(help: "Addressing style: path or virtual (default: virtual for AWS, path otherwise).")
    public var addressing: String?

    @Option(name: .customLong("part-size"), help: "Multipart part size in MiB (at least 5).")
    public var partSizeMiB: Int = S3Configuration.defaultPartSize >> 20

    @Option(help: "Parts held in memory at once, uploading or filling (memory: part size × this).")
    public var partConcurrency: Int = 2

    public func s3Options() throws -> S3Options {
        var style: S3Configuration.Addressing?
        if let addressing {
            guard let parsed = S3Configuration.Addressing(rawValue: addressing) else {
                throw ValidationError("--addressing must be 'path' or 'virtual', not '\(addressing)'")
            }
            style = parsed
        }
        return S3Options(endpoint: endpoint ?? environment("DBQ_S3_ENDPOINT"), region: region, addressing: style,
                         partSize: partSizeMiB << 20, partConcurrency: partConcurrency)
    }
}

/// Human-readable byte counts.
public func formatBytes(_ count: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
}
