import RedisClient

/// Every Redis key dbq uses, named in one place. The keys of one queue share the hash
/// tag `{queue}`, so each queue lives in one slot of a Redis Cluster and its scripts'
/// keys are all in that slot.
public struct RedisQueueKeys: Sendable {
    public let queue: String

    public init(queue: String) { self.queue = queue }

    /// `dbq:{queue}:`: the prefix the Lua scripts build job keys from.
    public var prefix: String { "dbq:{\(queue)}:" }
    public var pending: String { prefix + "pending" }
    public var scheduled: String { prefix + "scheduled" }
    public var running: String { prefix + "running" }
    public var succeeded: String { prefix + "succeeded" }
    public var dead: String { prefix + "dead" }
    public var cancelled: String { prefix + "cancelled" }
    public var fence: String { prefix + "fence" }
    public var wake: String { prefix + "wake" }
    public func job(_ id: String) -> String { prefix + "job:" + id }
    public func unique(_ key: String) -> String { prefix + "unique:" + key }

    /// The sorted set that lists jobs in a state.
    public func set(for state: String) -> String { prefix + state }

    /// The fixed keys every queue script declares, in the order the scripts' prelude
    /// names them (KEYS[1] also routes the script to the queue's node on a cluster).
    public var scriptKeys: [String] { [pending, scheduled, running, succeeded, dead, cancelled, fence, wake] }

    /// The slot-routing key for commands on this queue's keys.
    public var routing: String { pending }

    /// The set of every queue name ever pushed to (outside any queue's slot).
    public static let queues = "dbq:queues"
    /// Hash of worker id → JSON describing the worker and when it was last seen.
    public static let workers = "dbq:workers"

    /// The dashboard's log of actions (newest first, capped).
    public static let audit = "dbq:dashboard:audit"

    /// The two keys of a named lock (one hash slot): shared holders and the exclusive one.
    public static func lock(_ name: String) -> (shared: String, exclusive: String) {
        ("dbq:lock:{\(name)}:shared", "dbq:lock:{\(name)}:exclusive")
    }
}
