import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure dbq on this machine and print figures (bench backup: medians of --runs; the others: one run each).",
        subcommands: [BenchBackup.self, BenchClients.self, BenchCopy.self, BenchExport.self, BenchIndexes.self, BenchQueue.self, BenchSnapshot.self]
    )
}
