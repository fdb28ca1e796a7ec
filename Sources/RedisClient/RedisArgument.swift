/// One binary-safe argument of a Redis command.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(_ int: Int) { bytes = Array(String(int).utf8) }
    public init(_ double: Double) { bytes = Array(String(double).utf8) }
    public init(stringLiteral value: String) { self.init(value) }
    public init(integerLiteral value: Int) { self.init(value) }
}

/// A command: its name and arguments.
public struct RedisCommand: Sendable, Hashable {
    public var arguments: [RedisArgument]

    public init(_ arguments: [RedisArgument]) {
        precondition(!arguments.isEmpty, "a Redis command needs a name")
        self.arguments = arguments
    }

    public init(_ name: RedisArgument, _ arguments: RedisArgument...) {
        self.arguments = [name] + arguments
    }

    /// The command's name, upper-cased, for errors and logs.
    public var name: String { String(decoding: arguments[0].bytes, as: UTF8.self).uppercased() }
}
