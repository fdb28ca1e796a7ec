import ArgumentParser
import DBQCommand
import DBQConfig
import DBQSupport
import Foundation
import Logging
import ObjectStorage
import PostgresClient
import RedisClient

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check and show the configuration (dbq.yaml and the environment).",
        subcommands: [Validate.self, Show.self])

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "validate",
            abstract: "Name every problem of the configuration with its path; with --check, try each service.")

        @OptionGroup var config: ConfigOptions
        @Flag(help: "Also connect: Redis PING, SELECT 1 on each database, a small put/get/delete on each storage.")
        var check = false

        func run() async throws {
            try await reportingFailures {
                let loaded = try config.load()
                guard check else {
                    print("configuration \(loaded.file ?? "(environment only)") is valid")
                    return
                }
                let logger = makeLogger("dbq.config")
                var problems: [String] = []
                if let redis = loaded.redis {
                    do {
                        let connection = try await RedisConnection.connect(redis, logger: logger)
                        try await connection.send("PING")
                        await connection.close()
                    } catch { problems.append("redis: \(error)") }
                }
                for (name, database) in loaded.databases.sorted(by: { $0.key < $1.key }) {
                    do {
                        let connection = try await PostgresConnection.connect(database.raw, logger: logger)
                        try await connection.query("SELECT 1")
                        await connection.close()
                    } catch { problems.append("databases.\(name): \(error)") }
                }
                for (name, settings) in loaded.storages.sorted(by: { $0.key < $1.key }) {
                    do {
                        let store = try settings.open(logger: logger)
                        let key = ".dbq-check-\(UUID().uuidString)"
                        _ = try await store.put(key, bytes: Array("dbq".utf8))
                        guard try await store.getBytes(key) == Array("dbq".utf8) else { throw CheckFailure("read back other bytes") }
                        try await store.delete(key)
                    } catch { problems.append("storages.\(name): \(error)") }
                }
                if !problems.isEmpty {
                    throw ConfigurationError(file: loaded.file ?? "(environment)", problems: problems)
                }
                print("configuration \(loaded.file ?? "(environment only)") is valid; Redis, \(loaded.databases.count) database(s) and \(loaded.storages.count) storage(s) answer")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the effective configuration, every secret masked.")
        @OptionGroup var config: ConfigOptions

        func run() async throws {
            try await reportingFailures { print(try config.load().redactedYAML) }
        }
    }
}
