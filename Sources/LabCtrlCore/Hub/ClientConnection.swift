import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

/// One user's proxied WebSocket: the proxy's side of a ``HubConnection``.
///
/// The relay updates activity on every frame (under a mutex, no actor hop), and the hub uses it to
/// inject in-band events (`lab.idle_warning`, the `error` of a dead worker) and to close the socket.
/// Injected events go through the ``FrameRelay`` on the socket's event loop, so they never split a
/// fragmented message being forwarded, and keep the order in which they were sent.
public final class ClientConnection: HubConnection {
    public let id: Int
    public let user: UserID
    public let tool: String
    public let sessionID: String
    let outbound: WebSocketOutboundWriter
    let relay: FrameRelay

    private struct State {
        var activity: ConnectionActivity
        /// Where to report the first user frame while an idle warning is out.
        var warning: HubInbox?
        /// Where to report the end of a busy period, once the hub registered this connection.
        var hub: HubInbox?
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

    /// Records a client frame. Returns the metrics change, and whether it voided an idle warning (which
    /// it then reported to the hub, in the frame's order).
    func clientFrame(_ frame: ConnectionActivity.ClientFrame, now: ContinuousClock.Instant) -> (ConnectionActivity.Change?, cancelledWarning: Bool) {
        state.withLock { s in
            let wasBusy = s.activity.busySince != nil
            let change = s.activity.clientFrame(frame, now: now)
            if wasBusy, s.activity.busySince == nil { s.hub?.busyEnded() }
            guard frame != .keepalive, let inbox = s.warning else { return (change, false) }
            s.warning = nil
            inbox.warningVoided(user, at: now)
            return (change, true)
        }
    }

    func workerEvent(_ type: String, ackText: String?, requestKey: String?, now: ContinuousClock.Instant) -> ConnectionActivity.Change? {
        state.withLock { s in
            let wasBusy = s.activity.busySince != nil
            let change = s.activity.workerEvent(type, ackText: ackText, requestKey: requestKey, now: now)
            if wasBusy, s.activity.busySince == nil { s.hub?.busyEnded() }
            return change
        }
    }

    public var activity: ConnectionActivity { state.withLock { $0.activity } }

    public func attached(_ inbox: HubInbox) { state.withLock { $0.hub = inbox } }

    public func setWarning(_ inbox: HubInbox?) { state.withLock { $0.warning = inbox } }

    // ---- writing (hub) ------------------------------------------------------------------------

    /// Sends a controller event in-band (between whole messages). The relay queues it on the socket's
    /// event loop right away, so events keep the order of the calls.
    public func send(_ event: RelayEvent) {
        guard !state.withLock({ $0.terminated }) else { return }
        _ = relay.inject(event.encoded())
    }

    /// Sends a last event (if any) and closes the client socket; only the first caller does anything.
    @discardableResult
    public func terminate(event: RelayEvent?, code: WebSocketErrorCode, reason: String) async -> Bool {
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
