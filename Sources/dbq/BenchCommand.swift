import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure dbq on this machine and print figures (medians of --runs, where a bench takes it).",
        subcommands: [BenchBackup.self, BenchClients.self, BenchCopy.self, BenchExport.self, BenchIndexes.self, BenchMask.self, BenchQueue.self, BenchSnapshot.self]
    )
}
