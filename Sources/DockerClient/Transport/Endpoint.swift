/// How curl reaches the engine: the URL prefix plus the socket path or TLS files. Derived once from
/// ``DockerClient/Configuration`` so each request only appends its path.
struct TransportEndpoint: Sendable {
    /// `http://localhost` for a unix socket (curl ignores the host), `http(s)://host:port` for TCP.
    var baseURL: String
    var unixSocketPath: String?
    var tls: DockerClient.Configuration.TLS?
    var connectTimeout: Duration

    init(_ configuration: DockerClient.Configuration) {
        switch configuration.endpoint {
        case .unixSocket(let path):
            baseURL = "http://localhost"
            unixSocketPath = path
            tls = nil
        case .tcp(let host, let port, let tls):
            let h = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host  // IPv6 literal
            baseURL = "\(tls == nil ? "http" : "https")://\(h):\(port)"
            unixSocketPath = nil
            self.tls = tls
        }
        connectTimeout = configuration.connectTimeout
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 for any positive duration (curl treats 0 as "no timeout").
    var curlMilliseconds: Int {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return ms <= 0 && self > .zero ? 1 : Int(clamping: ms)
    }
}
