import ArgumentParser
import DBQConfig

/// `--config` for commands that read dbq.yaml.
public struct ConfigOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("config"), help: "The configuration file (default: $DBQ_CONFIG, else ./dbq.yaml if present).")
    public var path: String?

    public func load() throws -> DBQConfiguration { try DBQConfiguration.load(path: path) }
}
