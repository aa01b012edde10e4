import HummingbirdWebSocket
import Logging
import NIOWebSocket
import RelayProtocol
import Synchronization

/// The one way a session is ended from outside its own task (revocation, a client protocol violation):
/// before the session has a ``ClientConnection`` the event and close go out directly, afterwards through
/// the connection (which guarantees a single final message with the hub's own closes).
final class SessionEnding: Sendable {
    let relay: FrameRelay
    let outbound: WebSocketOutboundWriter
    private struct State {
        var conn: ClientConnection?
        var ended = false
    }
    private let state = Mutex(State())

    init(relay: FrameRelay, outbound: WebSocketOutboundWriter) {
        self.relay = relay
        self.outbound = outbound
    }

    var isEnded: Bool { state.withLock { $0.ended } }

    /// Hands over the connection; false if the session was ended before.
    func attach(_ conn: ClientConnection) -> Bool {
        state.withLock { s in
            s.conn = conn
            return !s.ended
        }
    }

    func revoke(_ why: String) async {
        await end(LabEvents.error(RevocationService.message(why), sessionID: ""), code: .policyViolation, reason: "credential \(why)")
    }

    func invalidUTF8(_ logger: Logger) async {
        logger.notice("client sent invalid UTF-8 text; failing the connection")
        await end(LabEvents.error("Invalid message: text frames must be valid UTF-8", sessionID: ""), code: .dataInconsistentWithMessage, reason: "invalid UTF-8")
    }

    private func end(_ event: RelayEvent, code: WebSocketErrorCode, reason: String) async {
        let (conn, first) = state.withLock { s -> (ClientConnection?, Bool) in
            defer { s.ended = true }
            return (s.conn, !s.ended)
        }
        if let conn {
            var e = event
            e.sessionID = conn.sessionID
            await conn.terminate(event: e, code: code, reason: reason)
        } else if first {
            _ = try? await relay.inject(event.encoded()).get()
            try? await outbound.close(code, reason: reason)
        }
    }
}
