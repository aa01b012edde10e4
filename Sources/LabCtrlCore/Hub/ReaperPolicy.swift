/// The reaping rules as a pure function (unit-tested; ``WorkerHub/reapPass()`` applies them).
///
/// - A busy worker (turn in flight or pending permission) is never reaped, until it has been busy for
///   `maxTurn` (stuck), after which the busy time counts as idle.
/// - A worker without connections is reaped once idle for `idleTimeout`.
/// - A worker with connections first gets a `lab.idle_warning`; it is reaped at the warning's deadline
///   unless activity newer than the warning cancelled it. The deadline gives at least `warningLead`
///   from the moment the warning is sent, so a late reaper pass never reaps without notice.
public struct ReaperPolicy: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public var idleTimeout: Duration
    public var warningLead: Duration
    public var maxTurn: Duration

    public init(idleTimeout: Duration, warningLead: Duration, maxTurn: Duration) {
        self.idleTimeout = idleTimeout
        self.warningLead = warningLead
        self.maxTurn = maxTurn
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
}
