import DBQSupport
import DBQTestSupport
import Foundation
import Logging
import RedisClient
import Testing

/// Against the real Redis started by deploy/local/start.sh.
@Suite("Redis client against a real server")
struct RedisIntegrationTests {
    let logger = Logger(label: "test.redis")

    func connect() async throws -> RedisConnection {
        try await RedisConnection.connect(try RedisConfiguration(url: TestServices.redisURL), logger: logger)
    }

    func key(_ name: String = #function) -> RedisArgument {
        RedisArgument("dbq:test:\(name):\(UUID().uuidString)")
    }

    @Test("round trip of binary values, integers, nil and arrays")
    func roundTrip() async throws {
        let redis = try await connect()
        let k = key()
        let binary: [UInt8] = [0, 1, 2, 0, 255, 13, 10, 36]
        #expect(try await redis.send("SET", k, RedisArgument(binary)) == .status("OK"))
        #expect(try await redis.send("GET", k).bytes == binary)
        #expect(try await redis.send("STRLEN", k) == .integer(8))
        #expect(try await redis.send("GET", key("missing")) == .null)
        try await redis.send("RPUSH", k.with(":list"), "a", "", "c")
        #expect(try await redis.send("LRANGE", k.with(":list"), "0", "-1") == .array([.bulk(Array("a".utf8)), .bulk([]), .bulk(Array("c".utf8))]))
        try await redis.send("DEL", k, k.with(":list"))
    }

    @Test("an error reply is thrown with the command's name, and the connection goes on")
    func serverError() async throws {
        let redis = try await connect()
        let k = key()
        try await redis.send("SET", k, "text")
        do {
            try await redis.send("INCR", k)
            Issue.record("INCR of text succeeded")
        } catch let error as RedisError {
            #expect(error.code == .server)
            #expect(error.command == "INCR")
            #expect(error.description.contains("not an integer"))
        }
        #expect(try await redis.send("DEL", k) == .integer(1))
    }

    @Test("a pipeline of 10,000 commands: one reply per command, in order, errors in place")
    func pipelining() async throws {
        let redis = try await connect()
        let k = key()
        var commands = (0..<10_000).map { _ in RedisCommand("INCR", k) }
        commands.insert(RedisCommand("HGET", k, "x"), at: 5000)  // wrong type: an error in place
        let replies = try await redis.pipeline(commands)
        #expect(replies.count == 10_001)
        #expect(replies[0] == .integer(1))
        if case .error(let message) = replies[5000] { #expect(message.contains("WRONGTYPE")) } else { Issue.record("expected an error reply") }
        #expect(replies[10_000] == .integer(10_000))
        try await redis.send("DEL", k)
    }

    @Test("Lua scripts run by EVALSHA and are loaded again after SCRIPT FLUSH")
    func scripts() async throws {
        let redis = try await connect()
        let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[2]) .. ':' .. \(Int.random(in: 0..<1_000_000))")
        let k1 = key(), k2 = key("counter")
        let first = try await redis.run(script, keys: [k1, k2], arguments: ["v", "5"])
        #expect(first.string?.hasPrefix("5:") == true)
        try await redis.send("SCRIPT", "FLUSH")
        let second = try await redis.run(script, keys: [k1, k2], arguments: ["v", "2"])
        #expect(second.string?.hasPrefix("7:") == true)
        #expect(try await redis.send("GET", k1).string == "v")
        try await redis.send("DEL", k1, k2)
    }

    @Test("a blocking pop waits for its timeout, returns nil, and does not hold up other tasks")
    func blockingTimeout() async throws {
        let redis = try await connect()
        let other = try await connect()
        let empty = key()
        let clock = ContinuousClock()
        let started = clock.now
        async let blocked = redis.blocking(RedisCommand("BLMOVE", empty, empty.with(":to"), "LEFT", "RIGHT", "10"), timeout: .seconds(10))
        // While one connection is parked in BLMOVE for 10 s, another answers long before.
        let pingStarted = clock.now
        #expect(try await other.send("PING") == .status("PONG"))
        #expect(clock.now - pingStarted < .seconds(8))
        #expect(try await blocked == .null)
        let waited = clock.now - started
        #expect(waited >= .milliseconds(9900) && waited < .seconds(90))
    }

    @Test("a blocking pop returns as soon as an element is pushed")
    func blockingWakes() async throws {
        let redis = try await connect()
        let pusher = try await connect()
        let list = key()
        let clock = ContinuousClock()
        let started = clock.now
        async let popped = redis.blocking(RedisCommand("BLMOVE", list, list.with(":to"), "LEFT", "RIGHT", "60"), timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(100))
        try await pusher.send("RPUSH", list, "job")
        #expect(try await popped.string == "job")
        #expect(clock.now - started < .seconds(45), "woken by the push, not by the 60 s timeout")
        try await pusher.send("DEL", list, list.with(":to"))
    }

    @Test("CLIENT KILL: the next call fails naming host:port, the one after reconnects")
    func reconnectAfterKill() async throws {
        let redis = try await connect()
        let admin = try await connect()
        let id = try await redis.send("CLIENT", "ID").int!
        try await redis.send("SET", key(), "x", "EX", "10")
        try await admin.send("CLIENT", "KILL", "ID", RedisArgument(id))
        do {
            try await redis.send("PING")
            Issue.record("PING on a killed connection succeeded")
        } catch let error as RedisError {
            #expect(error.code == .connection)
            #expect(error.description.contains(redis.configuration.endpoint))
        }
        #expect(try await redis.send("PING") == .status("PONG"))
        #expect(await redis.connections == 2)
        // AUTH and SELECT were replayed: the new connection is usable as before.
        #expect(try await redis.send("CLIENT", "ID").int! != id)
    }

    @Test("a wrong password is one clear error")
    func wrongPassword() async throws {
        var configuration = try RedisConfiguration(url: TestServices.redisURL)
        configuration.password = "definitely-wrong"
        do {
            _ = try await RedisConnection.connect(configuration, logger: logger)
            Issue.record("connected with a wrong password")
        } catch let error as RedisError {
            #expect(error.code == .connection)
            #expect(error.description.contains("authentication refused"))
            #expect(!error.description.contains("definitely-wrong"))
        }
    }

    @Test("nothing listening: one clear error naming host:port, within the connect timeout")
    func refused() async throws {
        var configuration = RedisConfiguration(host: "127.0.0.1", port: TestServices.closedPort)
        configuration.connectTimeout = .seconds(2)
        let started = ContinuousClock.now
        do {
            _ = try await RedisConnection.connect(configuration, logger: logger)
            Issue.record("connected to a closed port")
        } catch let error as RedisError {
            #expect(error.code == .connection)
            #expect(error.description.contains("127.0.0.1:\(TestServices.closedPort)"))
            #expect(error.description.contains("refused"))
        }
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
    }

    @Test("a server that does not answer: the command fails as a timeout naming host:port")
    func commandTimeout() async throws {
        let silent = try SilentServer()
        var configuration = RedisConfiguration(host: "127.0.0.1", port: silent.port)
        configuration.commandTimeout = .milliseconds(300)
        let redis = RedisConnection(configuration: configuration, logger: logger)
        let started = ContinuousClock.now
        do {
            try await redis.send("PING")
            Issue.record("a silent server answered")
        } catch let error as RedisError {
            #expect(error.code == .timeout)
            #expect(error.description.contains("127.0.0.1:\(silent.port)"))
        }
        #expect(ContinuousClock.now - started < .seconds(90), "no hang")
    }
}

extension RedisArgument {
    func with(_ suffix: String) -> RedisArgument { RedisArgument(bytes + Array(suffix.utf8)) }
}
