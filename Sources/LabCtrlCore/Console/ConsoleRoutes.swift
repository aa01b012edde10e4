import Hummingbird
import NIOCore

/// The web console (plain HTML/CSS/JS compiled into the binary with SwiftPM's `embedInCode`).
///
/// Strict headers: scripts and connections only to this origin, no framing, no sniffing.
extension Router {
    public func addConsoleRoutes() {
        let assets: [(String, String, [UInt8])] = [
            ("/", "text/html; charset=utf-8", PackageResources.index_html),
            ("/console.js", "text/javascript; charset=utf-8", PackageResources.console_js),
            ("/console.css", "text/css; charset=utf-8", PackageResources.console_css),
        ]
        for (path, type, bytes) in assets {
            let body = ByteBuffer(bytes: bytes)
            get(RouterPath(path)) { _, _ in
                var headers = HTTPFields()
                headers[.contentType] = type
                headers[.cacheControl] = "no-cache"
                headers[.contentSecurityPolicy] =
                    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'"
                headers[.xContentTypeOptions] = "nosniff"
                headers[.init("X-Frame-Options")!] = "DENY"
                headers[.init("Referrer-Policy")!] = "no-referrer"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
            }
        }
    }
}
