import RelayProtocol

/// What a session is doing, read from its own events (for the listing and for the detach grace, which
/// never ends a session mid-turn or while a permission is pending).
struct SessionActivity: Sendable {
    enum State: String, Sendable {
        case running
        case waitingPermission = "waiting_permission"
        case idle
        case ended
    }

    private(set) var busySince: ContinuousClock.Instant?
    private(set) var pending: Set<String> = []
    private(set) var ended = false

    var state: State {
        if ended { return .ended }
        if !pending.isEmpty { return .waitingPermission }
        return busySince == nil ? .idle : .running
    }

    /// A turn runs or a permission waits.
    var isBusy: Bool { !ended && (busySince != nil || !pending.isEmpty) }

    mutating func event(_ event: RelayEvent, now: ContinuousClock.Instant) {
        switch event.type {
        case "permission_request":
            if let key = Self.key(event.requestID) { pending.insert(key) }
        case "permission_cancelled":
            if let key = Self.key(event.requestID) { pending.remove(key) }
        case "response", "error":
            busySince = nil
        case "session_end":
            ended = true
            busySince = nil
            pending = []
        default:
            break
        }
    }

    /// A prompt went to the agent (before its `input_ack`, which may follow the agent's first output).
    mutating func turnStarted(now: ContinuousClock.Instant) { busySince = now }

    mutating func answered(_ requestID: String) { pending.remove(requestID) }

    static func key(_ id: JSON?) -> String? {
        switch id {
        case .string(let s)?: s
        case .int(let i)?: String(i)
        case .double(let d)? where d.rounded() == d && abs(d) < 9e15: String(Int64(d))
        default: nil
        }
    }
}
