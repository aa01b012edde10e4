extension DockerClient {
    /// `GET /networks`, e.g. with `["name": ["lab-network"]]` (name filters match substrings).
    public func listNetworks(filters: DockerFilters = [:]) async throws -> [Network] {
        var query = Query()
        query.add(filters: filters)
        return try await send(try await request("GET", "/networks", query: query), as: [Network].self)
    }

    /// `GET /networks/{id}` by id or name; includes attached containers.
    public func inspectNetwork(_ id: String) async throws -> Network {
        try await send(try await request("GET", "/networks/\(Query.segment(id))"), as: Network.self)
    }

    /// `POST /networks/create`. With `checkDuplicate` (the default) an existing name gives a 409.
    public func createNetwork(_ spec: NetworkSpec) async throws -> NetworkCreateResponse {
        let request = try await request(
            "POST", "/networks/create", body: try jsonBody(spec), contentType: "application/json")
        return try await send(request, as: NetworkCreateResponse.self)
    }

    /// `POST /networks/{id}/connect`: attaches a container, optionally with DNS aliases.
    public func connectNetwork(_ network: String, container: String, aliases: [String]? = nil) async throws {
        struct Body: Encodable {
            let container: String
            let endpointConfig: EndpointConfig?
            enum CodingKeys: String, CodingKey { case container = "Container", endpointConfig = "EndpointConfig" }
        }
        let body = Body(container: container, endpointConfig: aliases.map { EndpointConfig(aliases: $0) })
        try await send(
            try await request(
                "POST", "/networks/\(Query.segment(network))/connect", body: try jsonBody(body),
                contentType: "application/json"))
    }

    /// `POST /networks/{id}/disconnect`.
    public func disconnectNetwork(_ network: String, container: String, force: Bool = false) async throws {
        struct Body: Encodable {
            let container: String
            let force: Bool
            enum CodingKeys: String, CodingKey { case container = "Container", force = "Force" }
        }
        try await send(
            try await request(
                "POST", "/networks/\(Query.segment(network))/disconnect",
                body: try jsonBody(Body(container: container, force: force)), contentType: "application/json"))
    }

    /// `DELETE /networks/{id}`.
    public func removeNetwork(_ id: String) async throws {
        try await send(try await request("DELETE", "/networks/\(Query.segment(id))"))
    }
}
