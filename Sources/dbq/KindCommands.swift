import ArgumentParser
import DBQConfig
import Foundation
import Queue

/// A job kind with options of its own: `dbq push KIND` and `dbq run KIND` take only these
/// (beside the queue options every push takes), so `dbq push --help` stays short however
/// many kinds there are.
protocol KindOptions: ParsableArguments {
    static var kind: String { get }
    static var abstract: String { get }
    static var discussion: String { get }
    /// The job's payload, checked here as far as this machine can (names against dbq.yaml,
    /// files parsed): bad input fails now, not on a worker.
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue
}

extension KindOptions {
    static var discussion: String { "" }
}

/// `dbq push KIND …` for a kind with its own options.
struct PushKind<Options: KindOptions>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Options.kind, abstract: Options.abstract, discussion: Options.discussion)
    }
    @OptionGroup var options: Options
    @OptionGroup(title: "Queue options") var job: QueueOptions
    @OptionGroup var redis: RedisOptions
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        var payload = JSONValue.null
        try await reportingFailures { payload = try options.payload(try config.load()) }
        try await job.push(kind: Options.kind, payload: payload, redis: redis)
    }
}

/// `dbq run KIND …`: the same options, run inline.
struct RunKind<Options: KindOptions>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Options.kind, abstract: Options.abstract + " Inline, in this process (as 'dbq push \(Options.kind)' run by a worker).")
    }
    @OptionGroup var options: Options
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await runInline(kind: Options.kind, config: config, maxAttempts: nil) { try options.payload($0) }
    }
}

/// Encodes a job's payload as the queue carries it.
func payloadJSON<P: Encodable>(_ payload: P) throws -> JSONValue {
    try JSONValue(json: String(decoding: try JSONEncoder().encode(payload), as: UTF8.self))
}
