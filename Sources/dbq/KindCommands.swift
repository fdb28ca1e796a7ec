import ArgumentParser
import DBQCommand
import DBQConfig
import Foundation
import Queue

/// A job kind's options: `dbq push KIND` and `dbq run KIND` take only these (beside the
/// queue options every push takes, and `--payload`), so each kind's `--help` lists what
/// that kind reads, however many kinds there are.
protocol KindOptions: ParsableArguments {
    static var kind: String { get }
    static var abstract: String { get }
    static var discussion: String { get }
    /// The job's payload, checked here as far as this machine can (names against dbq.yaml,
    /// files parsed): bad input fails now, not on a worker. `base` is `--payload`'s object;
    /// a kind whose options are all optional sets them over it (`PayloadFields`).
    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue
    /// The payload with what must not change between attempts fixed at push (`rollback
    /// --snapshot latest` names the snapshot that is latest now); as it is by default.
    func pinned(_ payload: JSONValue, configuration: DBQConfiguration) async throws -> JSONValue
}

extension KindOptions {
    static var discussion: String { "" }
    func pinned(_ payload: JSONValue, configuration: DBQConfiguration) async throws -> JSONValue { payload }
}

/// A kind with options it requires (`rollback --snapshot`): its payload comes from them alone.
protocol RequiredKindOptions: KindOptions {
    func payload(_ configuration: DBQConfiguration) throws -> JSONValue
}

extension RequiredKindOptions {
    func payload(_ configuration: DBQConfiguration, base: [String: JSONValue]?) throws -> JSONValue {
        if base != nil {
            throw ValidationError("dbq push \(Self.kind) builds its payload from its options; for a payload written as JSON use 'dbq push job \(Self.kind) --payload JSON'")
        }
        return try payload(configuration)
    }
}

/// `dbq push KIND …` for a kind with its own options.
struct PushKind<Options: KindOptions>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Options.kind, abstract: Options.abstract, discussion: Options.discussion)
    }
    @OptionGroup(title: "Job options") var options: Options
    @OptionGroup(title: "Payload") var input: PayloadInput
    @OptionGroup(title: "Queue options") var job: QueueOptions
    @OptionGroup var redis: RedisOptions
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        var payload = JSONValue.null
        try await reportingFailures {
            let configuration = try config.load()
            payload = try await options.pinned(try options.payload(configuration, base: try input.object()), configuration: configuration)
        }
        try await job.push(kind: Options.kind, payload: payload, redis: redis)
    }
}

/// `dbq run KIND …`: the same options, run inline.
struct RunKind<Options: KindOptions>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Options.kind, abstract: Options.abstract + " Inline, in this process (as 'dbq push \(Options.kind)' run by a worker).")
    }
    @OptionGroup(title: "Job options") var options: Options
    @OptionGroup(title: "Payload") var input: PayloadInput
    @Option(help: "Attempts (default: the kind's).") var maxAttempts: Int?
    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await runInline(kind: Options.kind, config: config, maxAttempts: maxAttempts) { try options.payload($0, base: try input.object()) }
    }
}

/// Encodes a job's payload as the queue carries it.
func payloadJSON<P: Encodable>(_ payload: P) throws -> JSONValue {
    try JSONValue(json: String(decoding: try JSONEncoder().encode(payload), as: UTF8.self))
}
