import Foundation

/// Where a client may send a Snowflake token: the reference posts the token, possibly
/// read from any worker environment variable, to any `account_url`. Here the URL must be https on an
/// operator-allowed host pattern (default `*.snowflakecomputing.com`) or exactly one of the
/// operator's extra origins (`--cortex-allowed-origin`, the only way to allow http, for test
/// servers), with no credentials, path, query or fragment; and `token_env` must be on the operator's
/// list (default `SNOWFLAKE_PAT`).
public enum CortexEndpointPolicy {
    /// `scheme://host:port` with the default port made explicit, lower-cased; nil if not a plain origin.
    public static func normalizedOrigin(_ text: String) -> String? {
        guard let c = URLComponents(string: text), let scheme = c.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = c.host?.lowercased(), !host.isEmpty, c.user == nil, c.password == nil, c.query == nil,
            c.fragment == nil, c.path.isEmpty || c.path == "/"
        else { return nil }
        let port = c.port ?? (scheme == "https" ? 443 : 80)
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(shownHost):\(port)"
    }

    /// The base URL to use (trailing `/` removed), or the refusal text.
    static func check(accountURL: String, options: WorkerOptions) -> Result<String, Refusal> {
        let trimmed = accountURL.hasSuffix("/") ? String(accountURL.dropLast()) : accountURL
        guard let origin = normalizedOrigin(trimmed), let c = URLComponents(string: trimmed) else {
            return .failure(Refusal("account_url '\(accountURL)' must be a plain https://<host> URL"))
        }
        if options.cortexAllowedOrigins.contains(origin) { return .success(trimmed) }
        let host = (c.host ?? "").lowercased()
        guard c.scheme?.lowercased() == "https", c.port == nil || c.port == 443 else {
            return .failure(Refusal("account_url '\(accountURL)' is not allowed: it must use https"))
        }
        guard options.cortexAllowedHosts.contains(where: { matches(host: host, pattern: $0) }) else {
            return .failure(Refusal("account_url host '\(host)' is not on this worker's Cortex allow-list"))
        }
        return .success(trimmed)
    }

    /// `*.example.com` matches one or more labels before `example.com`; otherwise an exact match.
    static func matches(host: String, pattern: String) -> Bool {
        let pattern = pattern.lowercased()
        if pattern.hasPrefix("*.") {
            let suffix = String(pattern.dropFirst(1))  // ".example.com"
            return host.hasSuffix(suffix) && host.count > suffix.count
        }
        return host == pattern
    }

    struct Refusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
