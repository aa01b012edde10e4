extension DockerClient {
    /// `GET /_ping`: succeeds if the engine answers (use it for readiness checks).
    public func ping() async throws {
        try await send(HTTPRequest("GET", "/_ping", timeout: configuration.requestTimeout))
    }

    /// `GET /version` (unversioned, so it also works before negotiation).
    public func version() async throws -> SystemVersion {
        try await send(HTTPRequest("GET", "/version", timeout: configuration.requestTimeout), as: SystemVersion.self)
    }

    /// `GET /info`.
    public func info() async throws -> SystemInfo {
        try await send(try await request("GET", "/info"), as: SystemInfo.self)
    }
}
