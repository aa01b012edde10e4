import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

/// One user's proxied WebSocket, as the hub and reaper see it.
///
/// The relay updates activity on every frame (under a mutex, no actor hop), and the hub uses it to
/// inject in-band events (`lab.idle_warning`, the `error` of a dead worker) and to close the socket.
/// Injected events go through the ``FrameRelay`` on the socket's event loop, so they never split a
/// fragmented message being forwarded.
public final class ClientConnection: Sendable {
    public let id: Int
    public let user: UserID
    public let tool: String
    public let sessionID: String
    let outbound: WebSocketOutboundWriter
    let relay: FrameRelay

    private struct State {
        var activity: ConnectionActivity
        var warned = false
        /// Set once a final error/close was sent, so proxy and hub never both send one.
        var terminated = false
    }
    private let state: Mutex<State>

    init(id: Int, user: UserID, tool: String, sessionID: String, outbound: WebSocketOutboundWriter, relay: FrameRelay, now: ContinuousClock.Instant) {
        self.id = id
        self.user = user
        self.tool = tool
        self.sessionID = sessionID
        self.outbound = outbound
        self.relay = relay
        self.state = Mutex(State(activity: ConnectionActivity(now: now)))
    }

    // ---- activity (called by the relay) ----------------------------------------------------

    /// Records a client frame. Returns the metrics change, and whether an idle warning was active (the
    /// caller then asks the hub to cancel it).
    func clientFrame(_ frame: ConnectionActivity.ClientFrame, now: ContinuousClock.Instant) -> (ConnectionActivity.Change?, cancelledWarning: Bool) {
        state.withLock { s in
            let change = s.activity.clientFrame(frame, now: now)
            var cancelled = false
            if frame != .keepalive, s.warned {
                s.warned = false
                cancelled = true
            }
            return (change, cancelled)
        }
    }

    func workerEvent(_ type: String, ackText: String?, requestKey: String?, now: ContinuousClock.Instant) -> ConnectionActivity.Change? {
        state.withLock { $0.activity.workerEvent(type, ackText: ackText, requestKey: requestKey, now: now) }
    }

    var activity: ConnectionActivity { state.withLock { $0.activity } }

    func setWarned(_ warned: Bool) { state.withLock { $0.warned = warned } }

    // ---- writing (hub) ------------------------------------------------------------------------

    /// Sends a controller event in-band (between whole messages).
    func inject(_ event: RelayEvent) async {
        guard !state.withLock({ $0.terminated }) else { return }
        _ = try? await relay.inject(event.encoded()).get()
    }

    /// Sends a last event (if any) and closes the client socket; only the first caller does anything.
    @discardableResult
    func terminate(event: RelayEvent?, code: WebSocketErrorCode, reason: String) async -> Bool {
        let first: Bool = state.withLock { s in
            if s.terminated { return false }
            s.terminated = true
            return true
        }
        guard first else { return false }
        if let event { _ = try? await relay.inject(event.encoded()).get() }
        try? await outbound.close(code, reason: reason)
        return true
    }

    var isTerminated: Bool { state.withLock { $0.terminated } }
}
