/// Which browser origins may open `/ws` (cross-site WebSocket hijacking: the `lab_token` cookie is sent
/// by the browser whatever page opens the socket).
///
/// No `Origin` header: allowed (non-browser clients never send one). Otherwise the origin must be the
/// controller's own — the same host and port as the request's `Host` — or listed in
/// `LAB_ALLOWED_ORIGINS`. `Origin: null` (sandboxed frames, files) is never the controller's own.
public struct OriginPolicy: Sendable {
    let allowed: Set<String>

    public init(allowedOrigins: [String]) {
        allowed = Set(allowedOrigins.compactMap(Self.normalize))
    }

    /// Whether an upgrade with `origin` (the header, if any) and `host` (the request authority) may pass.
    public func permits(origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        guard let o = Self.normalize(origin) else { return false }
        if allowed.contains(o) { return true }
        guard let host, !host.isEmpty, let scheme = o.split(separator: ":", maxSplits: 1).first else { return false }
        return Self.normalize("\(scheme)://\(host)") == o
    }

    /// `scheme://host[:port]` in lower case without a default port (80 for http/ws, 443 for https/wss);
    /// nil when it is not such an origin (a path, credentials, no host, `null`).
    public static func normalize(_ text: String) -> String? {
        let t = text.trimmingWhitespace().lowercased()
        guard let sep = t.range(of: "://") else { return nil }
        let scheme = String(t[..<sep.lowerBound])
        var rest = String(t[sep.upperBound...])
        if rest.hasSuffix("/") { rest.removeLast() }
        guard ["http", "https", "ws", "wss"].contains(scheme), !rest.isEmpty, rest.utf8.count <= 300 else { return nil }
        guard !rest.contains(where: { "/?#@ \\".contains($0) }) else { return nil }
        var host = rest
        var port: String?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[...close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { return nil }
                port = String(after.dropFirst())
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            port = String(rest[rest.index(after: colon)...])
        }
        guard !host.isEmpty else { return nil }
        if let p = port {
            guard let n = Int(p), (1...65535).contains(n) else { return nil }
            let isDefault = (n == 80 && (scheme == "http" || scheme == "ws")) || (n == 443 && (scheme == "https" || scheme == "wss"))
            port = isDefault ? nil : String(n)
        }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }
}
