import HTTPTypes
import Hummingbird
import NIOCore

/// Answers `405 Method Not Allowed` with an `Allow` header for a known path asked with another method
/// (RFC 9110 §15.5.6); the router alone would say 404, as if the path did not exist.
///
/// The table lists the routes of ``HTTPRoutes`` and the console (docs/openapi.yaml); a route added there
/// belongs here too.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    static var getOnly: Set<String> { ["/", "/console.js", "/console.css", "/healthz", "/readyz", "/metrics", "/ws", "/v1/me", "/v1/sessions", "/v1/workers"] }

    /// The methods `path` answers, or nil when the path is not a route (then the router's 404 stands).
    static func allowed(_ path: String) -> [HTTPRequest.Method]? {
        if getOnly.contains(path) { return [.get] }
        let prefix = "/v1/workers/"
        if path.hasPrefix(prefix), path.count > prefix.count, !path.dropFirst(prefix.count).contains("/") { return [.post, .delete] }
        return nil
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let methods = Self.allowed(request.uri.path), !methods.contains(request.method) else {
            return try await next(request, context)
        }
        let allow = methods.map(\.rawValue).joined(separator: ", ")
        return Response(
            status: .methodNotAllowed, headers: [.contentType: "text/plain; charset=utf-8", .allow: allow],
            body: .init(byteBuffer: ByteBuffer(string: "method not allowed\n")))
    }
}
