/// Redis Cluster's key → slot function: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, when not empty), modulo 16384.
public enum HashSlot {
    public static let count = 16384

    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    public static func of(_ key: [UInt8]) -> Int {
        var bytes = key[...]
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
           let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            bytes = key[(open + 1)..<close]
        }
        return Int(crc16(bytes) & 0x3FFF)
    }

    /// CRC-16/XMODEM (polynomial 0x1021, no reflection, initial 0).
    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}

/// Which node serves each slot, from `CLUSTER SLOTS`; replaced whole on refresh, and
/// corrected slot by slot on `MOVED`.
public struct SlotMap: Sendable, Equatable {
    /// Node endpoint (`host:port`) per slot; nil where no node serves it.
    var owners: [String?]
    /// Masters' endpoints, in the order `CLUSTER SLOTS` named them.
    public private(set) var masters: [String]
    /// How many replicas each master had when the map was read.
    public private(set) var replicas: [String: Int] = [:]

    public init() {
        owners = Array(repeating: nil, count: HashSlot.count)
        masters = []
    }

    public func node(for slot: Int) -> String? { owners[slot] }

    /// Moves one slot to `endpoint` (a `MOVED` reply).
    public mutating func move(_ slot: Int, to endpoint: String) {
        owners[slot] = endpoint
        if !masters.contains(endpoint) { masters.append(endpoint) }
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id…], replicas…]…]`.
    /// An empty host means the node that answered (`answering`).
    public static func parse(_ reply: RedisValue, answering: String) throws(RedisError) -> SlotMap {
        guard let ranges = reply.array else {
            throw RedisError(code: .protocolViolation, message: "CLUSTER SLOTS returned \(reply)", command: "CLUSTER")
        }
        var map = SlotMap()
        for range in ranges {
            guard let r = range.array, r.count >= 3, let start = r[0].int, let end = r[1].int,
                  (0..<HashSlot.count).contains(start), (start..<HashSlot.count).contains(end),
                  let master = r[2].array, master.count >= 2, let port = master[1].int else {
                throw RedisError(code: .protocolViolation, message: "CLUSTER SLOTS returned a range it cannot read: \(range)", command: "CLUSTER")
            }
            var host = master[0].string ?? ""
            if host.isEmpty || host == "?" { host = String(answering.split(separator: ":").dropLast().joined(separator: ":")) }
            let endpoint = RedisConfiguration.endpoint(host: host, port: port)
            for slot in start...end { map.owners[slot] = endpoint }
            if !map.masters.contains(endpoint) { map.masters.append(endpoint) }
            map.replicas[endpoint] = max(map.replicas[endpoint] ?? 0, r.count - 3)
        }
        return map
    }

    /// Slots no node serves (the cluster cannot take every key until they are covered).
    public var uncovered: Int { owners.reduce(0) { $0 + ($1 == nil ? 1 : 0) } }
}

/// A cluster's redirect reply: `MOVED slot host:port` (the slot lives there now) or
/// `ASK slot host:port` (ask there once, after `ASKING`, while the slot migrates).
public enum ClusterRedirect: Equatable, Sendable {
    case moved(slot: Int, endpoint: String)
    case ask(slot: Int, endpoint: String)

    public init?(_ message: String) {
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]) else { return nil }
        switch parts[0] {
        case "MOVED": self = .moved(slot: slot, endpoint: String(parts[2]))
        case "ASK": self = .ask(slot: slot, endpoint: String(parts[2]))
        default: return nil
        }
    }
}
