import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

/// One user's proxied WebSocket, as the hub and reaper see it.
///
/// The proxy updates activity on every frame (under a mutex, no actor hop), and the hub uses it to
/// inject in-band events (`lab.idle_warning`, the `error` of a dead worker) and to close the socket.
/// Injected events never split a fragmented message that the proxy is forwarding: while a message is
/// in progress they are queued and written after its last frame.
public final class ClientConnection: Sendable {
    public let id: Int
    public let user: UserID
    public let tool: String
    public let sessionID: String
    let outbound: WebSocketOutboundWriter

    private struct State {
        var activity: ConnectionActivity
        var warned = false
        var inMessage = false
        var queued: [ByteBuffer] = []
        /// Set once a final error/close was sent by the hub, so proxy and hub never both send one.
        var terminated = false
    }
    private let state: Mutex<State>

    init(id: Int, user: UserID, tool: String, sessionID: String, outbound: WebSocketOutboundWriter, now: ContinuousClock.Instant) {
        self.id = id
        self.user = user
        self.tool = tool
        self.sessionID = sessionID
        self.outbound = outbound
        self.state = Mutex(State(activity: ConnectionActivity(now: now)))
    }

    // ---- activity (called by the proxy) -------------------------------------------------

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

    // ---- writing (proxy pump and hub) ---------------------------------------------------

    /// Forwards one frame from the worker. Marks fragmented messages so injections wait for their end.
    func forward(_ frame: WebSocketFrame) async throws {
        let startsOrContinues = !frame.fin
        if startsOrContinues { state.withLock { $0.inMessage = true } }
        try await outbound.write(.custom(frame))
        if frame.fin {
            let queued: [ByteBuffer] = state.withLock { s in
                guard s.inMessage else { return [] }
                s.inMessage = false
                defer { s.queued.removeAll() }
                return s.queued
            }
            for q in queued { try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: q))) }
        }
    }

    /// Sends a controller event in-band (between whole messages).
    func inject(_ event: RelayEvent) async {
        let buffer = ByteBuffer(bytes: event.encoded())
        let now: Bool = state.withLock { s in
            if s.terminated { return false }
            if s.inMessage {
                s.queued.append(buffer)
                return false
            }
            return true
        }
        if now { try? await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: buffer))) }
    }

    /// Sends a last event (if any) and closes the client socket; only the first caller does anything.
    /// Returns false if the connection was already terminated.
    @discardableResult
    func terminate(event: RelayEvent?, code: WebSocketErrorCode, reason: String) async -> Bool {
        let first: Bool = state.withLock { s in
            if s.terminated { return false }
            s.terminated = true
            return true
        }
        guard first else { return false }
        if let event { try? await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: event.encoded())))) }
        try? await outbound.close(code, reason: reason)
        return true
    }

    var isTerminated: Bool { state.withLock { $0.terminated } }
}
