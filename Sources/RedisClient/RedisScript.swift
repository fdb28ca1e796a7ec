import Crypto

/// A Lua script, called by its SHA-1 with `EVALSHA` and loaded on `NOSCRIPT`.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// The hex SHA-1 of the source, as Redis names the script.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

extension RedisConnection {
    /// Runs `script` with `EVALSHA`; if the server does not know it (first use, a
    /// restart, `SCRIPT FLUSH`), loads it and runs it again.
    @discardableResult
    public func run(_ script: RedisScript, keys: [RedisArgument] = [], arguments: [RedisArgument] = []) async throws -> RedisValue {
        let call = RedisCommand(["EVALSHA", RedisArgument(script.sha1), RedisArgument(keys.count)] + keys + arguments)
        // The script cache can be flushed between the load and the call (SCRIPT FLUSH, a
        // restart, a failover): load and call again, a bounded number of times.
        var attempt = 0
        while true {
            do {
                return try await send(call)
            } catch let error as RedisError where error.code == .server && error.message.hasPrefix("NOSCRIPT") && attempt < 3 {
                attempt += 1
                let loaded = try await send("SCRIPT", "LOAD", RedisArgument(script.source))
                guard loaded.string == script.sha1 else {
                    throw RedisError(code: .protocolViolation, message: "SCRIPT LOAD returned \(loaded), expected \(script.sha1)",
                                     endpoint: configuration.endpoint, command: "SCRIPT")
                }
            }
        }
    }
}
