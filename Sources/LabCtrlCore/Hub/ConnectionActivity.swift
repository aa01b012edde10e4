/// What one proxied session tells us about user intent.
///
/// Activity is a user frame, a turn in flight (from `input_ack` to `response` / `error` /
/// `session_end`) or a pending `permission_request`. Keep-alives (`{"type":"ping"}`, WebSocket pings)
/// and agent output alone are not activity. Pure value type so the rules are unit-tested directly.
public struct ConnectionActivity: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public private(set) var lastUserFrame: Instant
    public private(set) var turnStartedAt: Instant?
    public private(set) var pending: [String: Instant] = [:]
    /// When the session last stopped being busy: the end of a turn counts as activity (the user reads the
    /// answer), so the idle clock starts there and not at the prompt that began the turn.
    public private(set) var lastBusyEnd: Instant

    public init(now: Instant) {
        lastUserFrame = now
        lastBusyEnd = now
    }

    /// The later of the last user frame and the end of the last busy period.
    public var lastActivity: Instant { max(lastUserFrame, lastBusyEnd) }

    private mutating func busyMayHaveEnded(_ now: Instant) {
        if busySince == nil { lastBusyEnd = max(lastBusyEnd, now) }
    }

    /// What a client frame is, as far as activity goes.
    public enum ClientFrame: Sendable, Equatable {
        /// Application-level `{"type":"ping"}` / `pong`: not activity.
        case keepalive
        /// `permission_response` for this request key.
        case permissionResponse(String?)
        /// Anything else the user sent.
        case other
    }

    /// Something worth counting in metrics.
    public enum Change: Sendable, Equatable {
        case turnStarted
        case permissionRequested
        case permissionResolved(waited: Duration)
    }

    /// `input_ack` texts that are not a turn: relay-answered slash commands (acked *after* their
    /// `response`) and control messages that never reach the agent.
    static let nonTurnAcks: Set<String> = ["/cost", "/status", "/new", "/clear", "set_approval_policy", "raw_request", "ping", "pong"]

    /// Records a client frame; returns whether it counted as user activity.
    @discardableResult
    public mutating func clientFrame(_ frame: ClientFrame, now: Instant) -> Change? {
        switch frame {
        case .keepalive:
            return nil
        case .permissionResponse(let key):
            lastUserFrame = now
            if let key, let since = pending.removeValue(forKey: key) {
                busyMayHaveEnded(now)
                return .permissionResolved(waited: now - since)
            }
            return nil
        case .other:
            lastUserFrame = now
            return nil
        }
    }

    /// Records a worker event by type. `ackText` is the `text` of an `input_ack`; `requestKey` the
    /// normalised `request_id` of permission events.
    @discardableResult
    public mutating func workerEvent(_ type: String, ackText: String? = nil, requestKey: String? = nil, now: Instant) -> Change? {
        switch type {
        case "input_ack":
            let text = (ackText ?? "").trimmingWhitespace()
            if Self.nonTurnAcks.contains(text) { return nil }
            if turnStartedAt == nil {
                turnStartedAt = now
                return .turnStarted
            }
            return nil
        case "response", "error":
            if turnStartedAt != nil {
                turnStartedAt = nil
                busyMayHaveEnded(now)
            }
            return nil
        case "session_end":
            turnStartedAt = nil
            pending.removeAll()
            busyMayHaveEnded(now)
            return nil
        case "permission_request":
            guard let requestKey else { return nil }
            if pending[requestKey] == nil {
                pending[requestKey] = now
                return .permissionRequested
            }
            return nil
        case "permission_cancelled":
            if let requestKey, let since = pending.removeValue(forKey: requestKey) {
                busyMayHaveEnded(now)
                return .permissionResolved(waited: now - since)
            }
            return nil
        default:
            return nil
        }
    }

    /// Since when this session has been busy (turn in flight or prompt pending), or nil when it is not.
    public var busySince: Instant? {
        var earliest = turnStartedAt
        for t in pending.values where earliest == nil || t < earliest! { earliest = t }
        return earliest
    }
}
