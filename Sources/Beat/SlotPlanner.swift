import Foundation

/// What to do with the slots that came due since an entry last fired: pure, with the
/// clock as a parameter.
public enum CatchUp: Sendable, Equatable, CustomStringConvertible {
    /// Slots missed while no beat was up are dropped; only a slot due now fires.
    case skip
    /// After downtime, fire the newest missed slot once; drop the older ones.
    case once
    /// Fire every missed slot, oldest first, at most `limit` of them (the newest).
    case all(limit: Int)

    public var description: String {
        switch self {
        case .skip: "skip"
        case .once: "once"
        case .all(let limit): "all (up to \(limit))"
        }
    }
}

/// The slots to fire now, and how far the entry's cursor moves.
public struct SlotPlan: Sendable, Equatable {
    /// Slot times to fire, oldest first.
    public var fire: [Date]
    /// Due slots dropped by the catch-up policy (a lower bound when `moreSkipped`).
    public var skipped: Int
    public var moreSkipped: Bool
    /// The newest slot handled (fired or dropped); nil if nothing came due.
    public var cursor: Date?
}

public enum SlotPlanner {
    /// How late a slot may be and still count as due now rather than missed (by default;
    /// a beat passes a window longer than a leader takeover can take, `BeatService.onTime`).
    public static let onTime: TimeInterval = 5
    /// A new entry starts this far back: it fires the slot of the current second, not its past.
    public static let newEntryGrace: TimeInterval = 1

    /// `lastFired` is the cursor stored for the entry: the newest slot already handled;
    /// nil for an entry never fired, which starts from now (it does not fire its past).
    public static func plan(cron: CronExpression, zone: TimeZone, catchUp: CatchUp, lastFired: Date?, now: Date,
                            onTime: TimeInterval = SlotPlanner.onTime) -> SlotPlan {
        let from = lastFired ?? now.addingTimeInterval(-newEntryGrace)
        let want: Int = switch catchUp {
        case .skip, .once: 1
        case .all(let limit): max(1, limit)
        }
        let (newest, total, exact) = newestSlots(cron: cron, zone: zone, after: from, through: now, count: want)
        guard let last = newest.last else { return SlotPlan(fire: [], skipped: 0, moreSkipped: false, cursor: nil) }
        var fire: [Date]
        switch catchUp {
        case .skip:
            fire = now.timeIntervalSince(last) <= onTime ? [last] : []
        case .once:
            fire = [last]
        case .all:
            fire = newest
        }
        return SlotPlan(fire: fire, skipped: total - fire.count, moreSkipped: !exact, cursor: last)
    }

    /// The newest `count` slots in `(after, through]`, how many slots that interval has,
    /// and whether that count is exact (a gap is counted up to 20,000 slots or 31 days;
    /// past that the count is a lower bound).
    static func newestSlots(cron: CronExpression, zone: TimeZone, after: Date, through: Date, count: Int) -> ([Date], Int, Bool) {
        var window: TimeInterval = 60
        let span = through.timeIntervalSince(after)
        guard span > 0 else { return ([], 0, true) }
        let maxWindow: TimeInterval = 31 * 86_400
        // Count no further than the policy can use.
        let cap = max(20_000, count + 1)
        // The last window looked at, whole (fewer than `cap` slots): its newest slots are
        // the gap's newest.
        var previous: [Date] = []
        while true {
            let start = window >= span ? after : through.addingTimeInterval(-window)
            let slots = cron.fireTimes(after: start, through: through, in: zone, limit: cap)
            if window >= span && slots.count < cap {
                return (Array(slots.suffix(count)), slots.count, true)
            }
            // Too many slots to count, and the smaller window before holds the newest ones.
            if slots.count >= cap && previous.count >= count {
                return (Array(previous.suffix(count)), slots.count, false)
            }
            // Widen until the whole gap is counted, unless it holds too many slots to count:
            // then walk this window in chunks and keep the newest.
            if slots.count >= cap || window >= maxWindow {
                var newest = Array(slots.suffix(count))
                var total = slots.count
                var chunk = slots
                while chunk.count >= cap, let last = chunk.last {
                    chunk = cron.fireTimes(after: last, through: through, in: zone, limit: cap)
                    total += chunk.count
                    newest = Array((newest + chunk).suffix(count))
                }
                return (newest, total, false)
            }
            previous = slots
            window *= 4
        }
    }
}
