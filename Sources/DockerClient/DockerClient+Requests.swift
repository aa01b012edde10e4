import Foundation

/// How long one call may take.
enum RequestTimeout: Sendable {
    /// ``DockerClient/Configuration/requestTimeout``.
    case standard
    /// No limit: streams and waits.
    case none
    case custom(Duration)
}

extension DockerClient {
    /// Encoders and decoders are cheap value-like objects; one per call keeps them out of shared state.
    static func makeEncoder() -> JSONEncoder { JSONEncoder() }

    func duration(_ timeout: RequestTimeout) -> Duration? {
        switch timeout {
        case .standard: configuration.requestTimeout
        case .none: nil
        case .custom(let duration): duration
        }
    }

    /// Builds a request for a versioned API path such as `/containers/json`.
    func request(
        _ method: String, _ path: String, query: Query = Query(), body: RequestBody? = nil,
        contentType: String? = nil, headers: [String] = [], timeout: RequestTimeout = .standard
    ) async throws -> HTTPRequest {
        let version = try await apiVersion()
        return HTTPRequest(
            method, "/v\(version)\(path)\(query.string)", body: body, contentType: contentType, headers: headers,
            timeout: duration(timeout))
    }

    /// JSON-encodes a request body.
    func jsonBody(_ value: some Encodable) throws -> RequestBody {
        do {
            return .bytes(Array(try Self.makeEncoder().encode(value)))
        } catch {
            throw DockerError(.invalidArgument, message: "cannot encode request body: \(error)")
        }
    }

    /// Sends a request; any status ≥ 400 becomes a ``DockerError/Code/api`` error. (204 and 304 are success.)
    @discardableResult
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let response = try await transport.send(request)
        guard response.status < 400 else {
            throw DockerError.api(status: response.status, body: response.body, request: request.summary)
        }
        return response
    }

    /// Sends a request and decodes its JSON response.
    func send<T: Decodable>(_ request: HTTPRequest, as type: T.Type) async throws -> T {
        let response = try await send(request)
        return try Self.decode(type, from: response.body, request: request.summary)
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], request: String?) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            let sample = String(decoding: bytes.prefix(300), as: UTF8.self)
            throw DockerError(.decoding, message: "cannot decode \(T.self): \(error); body: \(sample)", request: request)
        }
    }

    /// Starts a streamed request; status ≥ 400 throws before any chunk is read.
    func openStream(_ request: HTTPRequest) async throws -> HTTPStreamResponse {
        try await transport.stream(request)
    }
}
