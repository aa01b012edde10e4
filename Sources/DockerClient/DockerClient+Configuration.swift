import Foundation

extension DockerClient {
    /// Where the engine is and how long to wait for it.
    public struct Configuration: Sendable {
        /// The engine's address.
        public enum Endpoint: Sendable, Equatable {
            /// A local socket, e.g. `/var/run/docker.sock`.
            case unixSocket(path: String)
            /// `tcp://host:port`; with `tls` the connection is HTTPS with optional client certificates.
            case tcp(host: String, port: Int, tls: TLS?)
        }

        /// TLS settings for a TCP endpoint, as `DOCKER_CERT_PATH` lays them out (`ca.pem`, `cert.pem`, `key.pem`).
        public struct TLS: Sendable, Equatable {
            /// CA bundle that signs the daemon's certificate; `nil` uses the system store.
            public var caCertificatePath: String?
            /// Client certificate and key presented to a daemon started with `--tlsverify`.
            public var clientCertificatePath: String?
            public var clientKeyPath: String?
            /// Check the daemon's certificate and host name (`DOCKER_TLS_VERIFY`).
            public var verifyPeer: Bool

            public init(
                caCertificatePath: String? = nil, clientCertificatePath: String? = nil, clientKeyPath: String? = nil,
                verifyPeer: Bool = true
            ) {
                self.caCertificatePath = caCertificatePath
                self.clientCertificatePath = clientCertificatePath
                self.clientKeyPath = clientKeyPath
                self.verifyPeer = verifyPeer
            }

            /// `ca.pem`, `cert.pem` and `key.pem` in `directory` (files that do not exist are left out).
            public static func certificateDirectory(_ directory: String, verifyPeer: Bool = true) -> TLS {
                func file(_ name: String) -> String? {
                    let path = (directory as NSString).appendingPathComponent(name)
                    return FileManager.default.fileExists(atPath: path) ? path : nil
                }
                return TLS(
                    caCertificatePath: file("ca.pem"), clientCertificatePath: file("cert.pem"),
                    clientKeyPath: file("key.pem"), verifyPeer: verifyPeer)
            }
        }

        /// The newest API version this client speaks; negotiation never goes above it.
        public static let maximumAPIVersion = "1.41"

        public var endpoint: Endpoint
        /// A fixed API version such as `"1.41"`; `nil` negotiates with `GET /version` on first use.
        public var apiVersion: String?
        /// Default whole-request timeout for ordinary calls. Streams (events, followed logs, wait, pull,
        /// build, import) have none unless the call passes one.
        public var requestTimeout: Duration
        /// Time allowed to open the connection (and finish the TLS handshake).
        public var connectTimeout: Duration

        public init(
            endpoint: Endpoint = .unixSocket(path: "/var/run/docker.sock"), apiVersion: String? = nil,
            requestTimeout: Duration = .seconds(60), connectTimeout: Duration = .seconds(10)
        ) {
            self.endpoint = endpoint
            self.apiVersion = apiVersion
            self.requestTimeout = requestTimeout
            self.connectTimeout = connectTimeout
        }

        /// Reads the Docker CLI's variables: `DOCKER_HOST` (`unix:///path`, `tcp://host:port`; default the
        /// local socket), `DOCKER_TLS_VERIFY` (any non-empty value turns on TLS with verification),
        /// `DOCKER_TLS` (TLS without verification), `DOCKER_CERT_PATH` (default `~/.docker`) and
        /// `DOCKER_API_VERSION` (pins the version).
        public static func fromEnvironment(
            _ environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws(DockerError) -> Configuration {
            let verify = !(environment["DOCKER_TLS_VERIFY"] ?? "").isEmpty
            let tlsWanted = verify || !(environment["DOCKER_TLS"] ?? "").isEmpty
            var tls: TLS? = nil
            if tlsWanted {
                let home = environment["HOME"] ?? NSHomeDirectory()
                let directory = environment["DOCKER_CERT_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(home)/.docker"
                tls = .certificateDirectory(directory, verifyPeer: verify)
                if verify && tls?.caCertificatePath == nil {
                    throw DockerError(
                        .invalidConfiguration, message: "DOCKER_TLS_VERIFY is set but \(directory)/ca.pem does not exist")
                }
            }
            var configuration = try Configuration(host: environment["DOCKER_HOST"] ?? "", tls: tls)
            if let version = environment["DOCKER_API_VERSION"], !version.isEmpty {
                configuration.apiVersion = version.hasPrefix("v") ? String(version.dropFirst()) : version
            }
            return configuration
        }

        /// Parses a `DOCKER_HOST` value. An empty string means the default local socket. `tls` applies to TCP.
        public init(host: String, tls: TLS? = nil) throws(DockerError) {
            self.init()
            if host.isEmpty { return }
            if host.hasPrefix("unix://") {
                let path = String(host.dropFirst("unix://".count))
                guard path.hasPrefix("/") else {
                    throw DockerError(.invalidConfiguration, message: "DOCKER_HOST \(host): the socket path must be absolute")
                }
                endpoint = .unixSocket(path: path)
                return
            }
            var rest: Substring
            if host.hasPrefix("tcp://") {
                rest = host.dropFirst("tcp://".count)
            } else if host.hasPrefix("http://") {
                rest = host.dropFirst("http://".count)
            } else if host.hasPrefix("https://") {
                rest = host.dropFirst("https://".count)
            } else {
                throw DockerError(
                    .invalidConfiguration, message: "DOCKER_HOST \(host): expected unix:///path or tcp://host:port")
            }
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
            var hostPart = rest
            var port = tls == nil ? 2375 : 2376
            if hostPart.hasPrefix("["), let close = hostPart.firstIndex(of: "]") {  // [v6]:port
                let after = hostPart[hostPart.index(after: close)...]
                if after.hasPrefix(":"), let p = Int(after.dropFirst()) { port = p }
                hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            } else if let colon = hostPart.lastIndex(of: ":") {
                guard let p = Int(hostPart[hostPart.index(after: colon)...]), (1...65535).contains(p) else {
                    throw DockerError(.invalidConfiguration, message: "DOCKER_HOST \(host): bad port")
                }
                port = p
                hostPart = hostPart[..<colon]
            }
            guard !hostPart.isEmpty else {
                throw DockerError(.invalidConfiguration, message: "DOCKER_HOST \(host): missing host")
            }
            endpoint = .tcp(host: String(hostPart), port: port, tls: tls)
        }
    }
}
