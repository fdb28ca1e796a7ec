import ArgumentParser
import DBQCommand
import Foundation
import ObjectStorage

/// The container image's HEALTHCHECK, for every role the image plays: ready when Redis
/// answers and, for a process serving metrics, when its own /healthz says so. It needs no
/// metrics port: `docker run dbq worker` without `--metrics` is healthy too.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Exit 0 when Redis answers and, with --metrics or $DBQ_METRICS, when that /healthz answers ok.",
        discussion: "For container health checks and probes: one line on standard error says what is not ready."
    )

    @OptionGroup var redis: RedisOptions

    @Option(name: .customLong("metrics"), help: "The metrics address of the process to ask, HOST:PORT (default: $DBQ_METRICS; 0.0.0.0 is asked on 127.0.0.1).")
    var metrics: String?

    func run() async throws {
        try await reportingFailures {
            let queue = try redis.queue(logger: makeLogger("dbq.healthcheck"), connections: 1)
            guard (try? await queue.ping()) == true else { throw ValidationError("not ready: Redis does not answer") }
            guard let address = metrics ?? ProcessInfo.processInfo.environment["DBQ_METRICS"], !address.isEmpty else { return }
            let url = "http://\(Self.local(address))/healthz"
            let response: PlainHTTP.Response
            do { response = try PlainHTTP.send(url: url) } catch { throw ValidationError("not ready: \(error)") }
            guard response.status == 200 else {
                throw ValidationError("not ready: \(url) answered \(response.status) \(String(decoding: response.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
    }

    /// A listen address as a client reaches it: the wildcard hosts mean this machine.
    static func local(_ address: String) -> String {
        for wildcard in ["0.0.0.0:", "[::]:", ":"] where address.hasPrefix(wildcard) {
            return "127.0.0.1:" + address.dropFirst(wildcard.count)
        }
        return address
    }
}
