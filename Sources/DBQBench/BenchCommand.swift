import ArgumentParser

import DBQCommand
/// `dbq bench`.
public struct BenchCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure dbq on this machine and print figures (medians of --runs, where a bench takes it).",
        subcommands: [BenchBackup.self, BenchClients.self, BenchCopy.self, BenchExport.self, BenchIndexes.self, BenchMask.self, BenchPITR.self, BenchQueue.self, BenchSnapshot.self]
    )
}
