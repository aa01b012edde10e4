import Logging
import RelayProtocol
import Synchronization

/// The only way a runtime's events reach clients: into the session's log (``SessionLog``), which numbers
/// them and from which every attached client reads. A send never waits for a socket, so a slow client
/// cannot slow the agent or the other clients.
public final class EventSink: Sendable {
    let log: SessionLog
    let logger: Logger
    /// Wakes the session's lifetime check when its activity changes.
    let changed = Signal()

    struct Tracked: Sendable {
        var activity = SessionActivity()
        var lastEventAt = RelayEvent.now()
        /// Claude's conversation id, once the agent reported it (`session_attach`).
        var claudeSessionID: String?
    }
    let tracked: Mutex<Tracked>

    init(log: SessionLog, claudeSessionID: String?, logger: Logger) {
        self.log = log
        self.logger = logger
        self.tracked = Mutex(Tracked(claudeSessionID: claudeSessionID))
    }

    /// Appends one event to the session. Returns false once the session has ended.
    @discardableResult
    public func send(_ event: RelayEvent) async -> Bool { record(event) }

    public func error(_ text: String, metadata: JSON? = nil) async {
        await send(RelayEvent("error", text: text, metadata: metadata))
    }

    /// The synchronous form of ``send(_:)`` (the session's own events).
    @discardableResult
    func record(_ event: RelayEvent) -> Bool {
        if event.isEmpty { return true }
        tracked.withLock { t in
            t.activity.event(event, now: .now)
            t.lastEventAt = event.ts
            if event.type == "session_attach", let id = event.metadata?["claude_session_id"]?.stringValue { t.claudeSessionID = id }
        }
        let ok = log.append(event, final: event.type == "session_end") != nil
        changed.notify()
        return ok
    }
}
