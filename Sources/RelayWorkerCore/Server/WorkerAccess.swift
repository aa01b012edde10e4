import HTTPTypes
import Hummingbird

/// Who may talk to this worker: only a caller that presents the worker's token (its controller), and no
/// browser page from a foreign origin. See docs/protocol.md, "Worker access".
///
/// Agents run arbitrary code next to every worker; without this, any of them (or a web page, through the
/// user's browser) could open a session on another user's worker.
public struct WorkerAccess: Sendable {
    public enum Decision: Sendable, Equatable {
        case allowed
        /// No or a wrong `Authorization: Bearer` token (HTTP 401).
        case unauthorized
        /// An `Origin` the operator did not allow (HTTP 403).
        case foreignOrigin(String)
    }

    /// The token as bytes; nil = no token required (loopback-only or `--insecure-no-token`).
    let token: [UInt8]?
    /// Exact `Origin` values allowed on an upgrade (`scheme://host[:port]`); any other is refused.
    let allowedOrigins: Set<String>

    public init(token: String?, allowedOrigins: [String]) {
        self.token = token.map { Array($0.utf8) }
        self.allowedOrigins = Set(allowedOrigins)
    }

    public func check(_ headers: HTTPFields) -> Decision {
        let origins = headers[values: .origin]
        // Two Origin headers are no browser's: refused rather than judged by the first.
        if origins.count > 1 { return .foreignOrigin(origins.joined(separator: ", ")) }
        if let origin = origins.first, !allowedOrigins.contains(origin), Self.isBrowserOrigin(origin) {
            return .foreignOrigin(origin)
        }
        guard let token else { return .allowed }
        guard let presented = Self.bearer(headers[values: .authorization]) else { return .unauthorized }
        return Self.constantTimeEqual(Array(presented.utf8), token) ? .allowed : .unauthorized
    }

    /// A page's origin as a browser sends it (`http(s)://…`, `null`, anything else it may invent). A
    /// `ws://`/`wss://` origin is never a page's: WebSocket client libraries send it (the controller's
    /// readiness probe does); such clients are held off by the token, not by this rule.
    static func isBrowserOrigin(_ origin: String) -> Bool {
        let lower = origin.lowercased()
        return !(lower.hasPrefix("ws://") || lower.hasPrefix("wss://"))
    }

    /// The token of the single `Authorization: Bearer …` header (several headers: none).
    static func bearer(_ values: [String]) -> Substring? {
        guard values.count == 1, let value = values.first else { return nil }
        let prefix = "bearer "
        guard value.count > prefix.count, value.prefix(prefix.count).lowercased() == prefix else { return nil }
        return value.dropFirst(prefix.count)
    }

    /// Compares without an early exit, so the time taken does not tell how many leading bytes matched.
    /// (The length is not secret: every token has the same length.)
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// Applies ``WorkerAccess`` to every HTTP request (the health endpoint, and upgrades the WebSocket
/// router declined), answering 401 or 403 with a short reason.
struct WorkerAccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: WorkerAccess

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch access.check(request.headers) {
        case .allowed:
            return try await next(request, context)
        case .unauthorized:
            context.logger.notice("worker: request refused: missing or wrong token", metadata: ["path": .client(request.uri.path)])
            return Self.refusal(.unauthorized, "a valid worker token is required\n", extra: [.wwwAuthenticate: "Bearer"])
        case .foreignOrigin(let origin):
            context.logger.notice(
                "worker: request refused: foreign Origin", metadata: ["path": .client(request.uri.path), "origin": .client(origin)])
            return Self.refusal(.forbidden, "this Origin is not allowed\n")
        }
    }

    static func refusal(_ status: HTTPResponse.Status, _ text: String, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
