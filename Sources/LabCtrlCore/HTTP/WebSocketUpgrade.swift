import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// The user WebSocket at `/ws`: the credential is checked *before* the upgrade, so an unauthenticated
/// client never reaches a worker (or even a WebSocket). Refusals answer HTTP 401 on the raw channel;
/// the framework's own refusal would be a 400.
enum WebSocketUpgrade {
    static func shouldUpgrade(controller: LabController)
        -> @Sendable (HTTPRequest, any Channel, Logger) async throws -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>>
    {
        let auth = controller.auth
        let metrics = controller.metrics
        let env = controller.proxyEnvironment
        return { head, channel, logger in
            let uri = URI(head.path ?? "/")
            guard uri.path == "/ws" || uri.path == "/ws/" else {
                await reject(channel, status: .notFound, body: "not found\n")
                return .dontUpgrade
            }
            let token = CredentialExtraction.token(headers: head.headerFields, uri: uri)
            switch await auth.authenticate(token) {
            case .failure(let reason):
                metrics.authFailed(reason)
                logger.notice("websocket refused", metadata: ["reason": "\(reason)", "peer": "\(channel.remoteAddress?.description ?? "?")"])
                await reject(channel, status: .unauthorized, body: "unauthorized\n")
                return .dontUpgrade
            case .success(let user):
                return .upgrade([:]) { inbound, outbound, _ in
                    await ProxySession.run(user: user, inbound: inbound, outbound: outbound, channel: channel, env: env)
                }
            }
        }
    }

    /// Answers the upgrade request with `status` and closes the connection, before the framework's
    /// generic 400 can be written.
    static func reject(_ channel: any Channel, status: HTTPResponseStatus, body: String) async {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        if status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer") }
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        let buffer = ByteBuffer(string: body)
        do {
            try await channel.eventLoop.flatSubmit {
                channel.write(HTTPServerResponsePart.head(head), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
                return channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            }.get()
        } catch {}
        // Half-close: the framework then finds the upgrade refused and ends quietly (a full close makes it
        // log the refused upgrade as an error).
        try? await channel.close(mode: .output)
    }
}
