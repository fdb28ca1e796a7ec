import ArgumentParser
import DatabaseJobs
import DBQCommand
import Queue

/// `--storage` and `--config` for the commands that read a store directly (the listings of
/// backups, exports and snapshots, retention and stats).
struct StoreOptions: ParsableArguments {
    @OptionGroup var config: ConfigOptions
    @Option(help: "The configured storage (default: 'archive', the only one, or the local default ./.dbq-storage).")
    var storage: String?

    func environment(locks: any ResourceLocks = MemoryLocks()) throws -> JobEnvironment {
        JobEnvironment(configuration: try config.load(), locks: locks, logger: makeLogger("dbq.backups"))
    }
}
