/// One reply from Redis, as RESP2 gives it.
public enum RedisValue: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    /// A bulk or status reply as UTF-8 text; integers as their decimal form.
    public var string: String? {
        switch self {
        case .status(let s): s
        case .bulk(let b): String(decoding: b, as: UTF8.self)
        case .integer(let i): String(i)
        default: nil
        }
    }

    /// An integer reply, or a bulk reply holding a decimal integer.
    public var int: Int? {
        switch self {
        case .integer(let i): i
        case .bulk(let b): Int(String(decoding: b, as: UTF8.self))
        case .status(let s): Int(s)
        default: nil
        }
    }

    /// The raw bytes of a bulk reply.
    public var bytes: [UInt8]? {
        if case .bulk(let b) = self { return b }
        return nil
    }

    /// The elements of an array reply.
    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }
}

extension RedisValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .status(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulk(let b): return "\"\(String(decoding: b, as: UTF8.self))\""
        case .null: return "(nil)"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        }
    }
}
