import Foundation

/// Every failure of a ``DockerClient`` call, except `CancellationError` when the calling `Task` is cancelled.
///
/// An extensible struct rather than an enum, so new kinds can be added without breaking `switch`es in
/// callers. Check ``code`` for the kind; for ``Code/api`` the engine answered and ``status`` holds the HTTP
/// status with the daemon's own ``message`` (e.g. 404 "No such container: x", 409 "Conflict. The container
/// name … is already in use").
public struct DockerError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String, Hashable, Sendable {
            case api, engineUnreachable, timeout, tls, transport, decoding, operationFailed, invalidConfiguration,
                invalidArgument
        }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The engine answered with an HTTP error status; see ``DockerError/status`` and ``DockerError/message``.
        public static var api: Code { Code(.api) }
        /// Nothing listens at the endpoint (no socket, connection refused, unknown host).
        public static var engineUnreachable: Code { Code(.engineUnreachable) }
        /// The request's timeout (or the connect timeout) expired.
        public static var timeout: Code { Code(.timeout) }
        /// The TLS handshake failed: bad or missing client certificate, untrusted server certificate.
        public static var tls: Code { Code(.tls) }
        /// The connection failed mid-way, or another transport problem.
        public static var transport: Code { Code(.transport) }
        /// The engine's JSON did not match the expected model.
        public static var decoding: Code { Code(.decoding) }
        /// A streamed operation (pull, build, import, load) reported an error line.
        public static var operationFailed: Code { Code(.operationFailed) }
        /// `DOCKER_HOST` or the TLS settings are unusable.
        public static var invalidConfiguration: Code { Code(.invalidConfiguration) }
        /// An argument cannot be sent (e.g. a file to upload cannot be opened).
        public static var invalidArgument: Code { Code(.invalidArgument) }

        public var description: String { kind.rawValue }
    }

    /// The kind of failure.
    public let code: Code
    /// The HTTP status for ``Code/api`` errors.
    public let status: Int?
    /// The daemon's `message` for API errors, or a description of the transport failure.
    public let message: String
    /// The request that failed, e.g. `GET /v1.41/containers/x/json`.
    public let request: String?
    /// The libcurl error code for transport failures.
    public let curlCode: Int?

    public init(_ code: Code, status: Int? = nil, message: String, request: String? = nil, curlCode: Int? = nil) {
        self.code = code
        self.status = status
        self.message = message
        self.request = request
        self.curlCode = curlCode
    }

    /// 404: no such container, image, network, volume or exec instance.
    public var isNotFound: Bool { code == .api && status == 404 }
    /// 409: name already in use, container running while removing without force, and the like.
    public var isConflict: Bool { code == .api && status == 409 }

    public var description: String {
        var text = "DockerError.\(code)"
        if let status { text += " \(status)" }
        text += ": \(message)"
        if let request { text += " (\(request))" }
        return text
    }

    /// An API error from a response body `{"message": "..."}` (plain text bodies are kept as they are).
    static func api(status: Int, body: [UInt8], request: String) -> DockerError {
        struct Body: Decodable { let message: String }
        let message =
            (try? JSONDecoder().decode(Body.self, from: Data(body)).message)
            ?? String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return DockerError(.api, status: status, message: message.isEmpty ? "HTTP \(status)" : message, request: request)
    }
}
