import HTTPTypes
import NIOCore
import WSCore

/// What a server answers a WebSocket upgrade request with (``WebSocketServerChannel``).
public enum UpgradeDecision: Sendable {
    /// Upgrade. `install` runs on the channel's event loop once the frame codec is in the pipeline and
    /// before any frame is read: handlers it adds see every frame. It returns the session's handler.
    case upgrade(install: @Sendable (any Channel) throws -> WebSocketDataHandler<WebSocketServerChannel.Context>)
    /// Answer with an HTTP error instead, and close the connection.
    case refuse(UpgradeRefusal)
}

/// A refused upgrade: a status and a one-line plain-text reason (`docs/protocol.md`: 401/403/429…).
public struct UpgradeRefusal: Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var body: String

    public init(_ status: HTTPResponse.Status, _ body: String) {
        self.status = status
        self.body = body
    }

    /// The response head: text, its length, `Connection: close`; a 401 names the Bearer scheme.
    public var head: HTTPResponse {
        var fields: HTTPFields = [
            .contentType: "text/plain; charset=utf-8",
            .contentLength: String(body.utf8.count),
            .connection: "close",
        ]
        if status == .unauthorized { fields[.wwwAuthenticate] = "Bearer" }
        return HTTPResponse(status: status, headerFields: fields)
    }
}
