import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import WebSocketServerChannel

/// The user WebSocket at `/ws`: the credential is checked *before* the upgrade, so an unauthenticated
/// client never reaches a worker (or even a WebSocket). Refusals are HTTP answers with their own status
/// (`docs/protocol.md`, "The controller's `/ws`"): 403 for a foreign `Origin` (``OriginPolicy``), 401 for
/// a bad credential, 429 over a connection cap (``ConnectionRegistry``). An accepted upgrade installs the
/// session's ``FrameRelay`` before the first frame is read.
enum WebSocketUpgrade {
    static func decide(controller: LabController) -> WebSocketServerChannel.Decide {
        let auth = controller.auth
        let metrics = controller.metrics
        let env = controller.proxyEnvironment
        let origins = OriginPolicy(allowedOrigins: controller.config.allowedOrigins)
        return { head, channel, logger in
            let uri = URI(head.path ?? "/")
            guard uri.path == "/ws" || uri.path == "/ws/" else { return .refuse(UpgradeRefusal(.notFound, "not found\n")) }
            let origin = head.headerFields[.origin]
            guard origins.permits(origin: origin, host: head.authority) else {
                metrics.connectionRefused("origin")
                logger.notice("websocket refused: foreign origin", metadata: ["origin": "\(origin?.prefix(200) ?? "")"])
                return .refuse(UpgradeRefusal(.forbidden, "origin not allowed\n"))
            }
            let token = CredentialExtraction.token(headers: head.headerFields, uri: uri)
            let user: UserID
            switch await auth.authenticate(token) {
            case .failure(let reason):
                metrics.authFailed(reason)
                logger.notice("websocket refused", metadata: ["reason": "\(reason)", "peer": "\(channel.remoteAddress?.description ?? "?")"])
                return .refuse(UpgradeRefusal(.unauthorized, "unauthorized\n"))
            case .success(let u):
                user = u
            }
            let slot: Int
            switch env.registry.admit(user, token: token ?? "") {
            case .failure(let cap):
                metrics.connectionRefused(cap.rawValue)
                logger.notice("websocket refused: connection cap", metadata: ["user": "\(user)", "cap": "\(cap.rawValue)"])
                return .refuse(UpgradeRefusal(.tooManyRequests, cap.message + "\n"))
            case .success(let id):
                slot = id
            }
            // Released when the TCP connection closes, whichever way the upgrade and session went.
            let registry = env.registry
            channel.closeFuture.whenComplete { _ in registry.release(slot) }
            return .upgrade { channel in
                let relay = try FrameRelay.install(
                    on: channel, maxMessageBytes: env.maxFrameBytes, maxHandshakeBytes: env.maxHandshakeBytes,
                    handshakeTimeout: TimeAmount(env.handshakeTimeout), metrics: env.metrics)
                return { inbound, outbound, _ in
                    await ProxySession.run(user: user, slot: slot, relay: relay, inbound: inbound, outbound: outbound, channel: channel, env: env)
                }
            }
        }
    }
}
