import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure dbq on this machine and print figures (medians of several runs).",
        subcommands: [BenchBackup.self, BenchClients.self, BenchCopy.self, BenchQueue.self]
    )
}
