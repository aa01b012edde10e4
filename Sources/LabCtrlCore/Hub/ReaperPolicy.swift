/// The reaping rules as a pure function (unit-tested; ``WorkerHub/reapPass()`` applies them).
///
/// - A busy worker (turn in flight or pending permission) is never reaped, until it has been busy for
///   `maxTurn` (stuck), after which the busy time counts as idle.
/// - A worker without connections is reaped once idle for `idleTimeout`.
/// - A worker with connections first gets a `lab.idle_warning`; it is reaped at the warning's deadline
///   unless activity newer than the warning cancelled it. The deadline gives at least `warningLead`
///   from the moment the warning is sent, so a late reaper pass never reaps without notice.
/// - ``nextDeadline(_:now:)`` says when ``decide(_:now:)`` next changes its mind without new activity;
///   the reaper sleeps until then (``wakeTime(_:now:housekeeping:)``), not on a fixed period.
public struct ReaperPolicy: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public var idleTimeout: Duration
    public var warningLead: Duration
    public var maxTurn: Duration

    /// A lead longer than the timeout is clamped to it (``WorkerHub`` logs that at start-up): the warning
    /// then goes out as soon as the worker is idle, and the reap still comes at the timeout.
    public init(idleTimeout: Duration, warningLead: Duration, maxTurn: Duration) {
        self.idleTimeout = idleTimeout
        let lead: Duration = warningLead < .zero ? .zero : warningLead
        self.warningLead = lead > idleTimeout ? idleTimeout : lead
        self.maxTurn = maxTurn
    }

    /// How late the reaper may act on a deadline, max(1 s, 10 % of the idle timeout), so that a burst of
    /// deadlines is handled by one pass.
    public var slack: Duration {
        let tenth: Duration = idleTimeout / 10
        let floor: Duration = .seconds(1)
        return tenth > floor ? tenth : floor
    }

    /// The facts about one worker at one moment.
    public struct Facts: Sendable {
        public var lastActivity: Instant
        public var busySince: Instant?
        public var connections: Int
        /// The pending warning: when it was sent and its deadline.
        public var warning: (sentAt: Instant, deadline: Instant)?

        public init(lastActivity: Instant, busySince: Instant?, connections: Int, warning: (sentAt: Instant, deadline: Instant)?) {
            self.lastActivity = lastActivity
            self.busySince = busySince
            self.connections = connections
            self.warning = warning
        }
    }

    public enum Decision: Sendable, Equatable {
        case keep
        /// Activity after the warning: tell the clients the warning is void.
        case cancelWarning
        /// Send `lab.idle_warning`; reap at `deadline` (seconds left = deadline - now).
        case warn(deadline: Instant)
        case reap(StopReason)
    }

    public func decide(_ f: Facts, now: Instant) -> Decision {
        var stuck = false
        var last = f.lastActivity
        if let busy = f.busySince {
            if now - busy < maxTurn {
                return f.warning == nil ? .keep : .cancelWarning
            }
            stuck = true
            // A stuck turn counts as activity until the cap ran out.
            last = max(last, busy + maxTurn - idleTimeout)
        }
        if let w = f.warning, last > w.sentAt { return .cancelWarning }
        let idle = now - last
        let reason: StopReason = stuck ? .stuck : .idle
        if f.connections == 0 {
            return idle >= idleTimeout ? .reap(reason) : .keep
        }
        if let w = f.warning {
            return now >= w.deadline ? .reap(reason) : .keep
        }
        if idle >= idleTimeout - warningLead {
            return .warn(deadline: max(last + idleTimeout, now + warningLead))
        }
        return .keep
    }

    /// The earliest instant at which ``decide(_:now:)`` returns something other than `.keep`, if nothing
    /// new happens (no activity, no connection change); `now` when it already does.
    public func nextDeadline(_ f: Facts, now: Instant) -> Instant {
        var last = f.lastActivity
        if let busy = f.busySince {
            let stuckAt = busy + maxTurn
            if now < stuckAt { return f.warning == nil ? stuckAt : now }
            last = max(last, stuckAt - idleTimeout)
        }
        if let w = f.warning, last > w.sentAt { return now }
        let due: Instant
        if f.connections == 0 {
            due = last + idleTimeout
        } else if let w = f.warning {
            due = w.deadline
        } else {
            due = last + idleTimeout - warningLead
        }
        return max(due, now)
    }

    /// When the reaper should wake for `deadlines`: at the latest of them that lies within ``slack`` of
    /// the earliest (so a burst coalesces and no deadline is late by more than the slack), and no later
    /// than `housekeeping` from now (the periodic pass, `LAB_REAPER_INTERVAL_SECS`).
    public func wakeTime(_ deadlines: [Instant], now: Instant, housekeeping: Duration) -> Instant {
        let bound = now + housekeeping
        guard let first = deadlines.min() else { return bound }
        let horizon = first + slack
        var wake = first
        for d in deadlines where d <= horizon && d > wake { wake = d }
        if wake < now { wake = now }
        return wake < bound ? wake : bound
    }
}
