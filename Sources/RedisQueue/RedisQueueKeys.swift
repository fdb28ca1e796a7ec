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
    /// Declared by every queue script and never written (see `scriptKeys`).
    public var slotGuard: String { prefix + "slot-guard" }
    public func job(_ id: String) -> String { prefix + "job:" + id }
    public func unique(_ key: String) -> String { prefix + "unique:" + key }

    /// The sorted set that lists jobs in a state.
    public func set(for state: String) -> String { prefix + state }

    /// The fixed keys every queue script declares, in the order the scripts' prelude
    /// names them (KEYS[1] also routes the script to the queue's node on a cluster), and
    /// last the slot guard, a key no one writes.
    ///
    /// The scripts also touch job, unique and beat-entry keys they cannot declare (which
    /// jobs a fetch leases is decided inside it). While a Redis Cluster migrates a slot
    /// key by key (`redis-cli --cluster reshard`, `rebalance`), a script that reaches such
    /// a key after it has moved is stopped there with its earlier writes kept: a fetch
    /// would have popped jobs it never put in `running`. Redis refuses (`TRYAGAIN`) a
    /// script during a slot's migration whenever a key it declares is missing, and the
    /// guard is always missing: no queue script runs while its slot is split, the client
    /// retries, and the script runs whole on the new owner once the slot has moved.
    public var scriptKeys: [String] { [pending, scheduled, running, succeeded, dead, cancelled, fence, wake, slotGuard] }

    /// The slot-routing key for commands on this queue's keys.
    public var routing: String { pending }

    /// The set of every queue name ever pushed to (outside any queue's slot).
    public static let queues = "dbq:queues"
    /// Hash of worker id → JSON describing the worker and when it was last seen.
    public static let workers = "dbq:workers"

    /// The dashboard's log of actions (newest first, capped).
    public static let audit = "dbq:dashboard:audit"
    /// The dashboard's sign-ins, apart from its actions.
    public static let signIns = "dbq:dashboard:signins"
    /// Failed sign-ins from one address, counted for a window.
    public static func signInFailures(_ address: String) -> String { "dbq:dashboard:signin-failures:\(address)" }

    /// The two keys of a named lock (one hash slot): shared holders and the exclusive one.
    public static func lock(_ name: String) -> (shared: String, exclusive: String) {
        ("dbq:lock:{\(name)}:shared", "dbq:lock:{\(name)}:exclusive")
    }
}
