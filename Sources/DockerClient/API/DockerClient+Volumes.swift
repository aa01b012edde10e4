extension DockerClient {
    /// `POST /volumes/create`. Creating an existing name returns that volume.
    public func createVolume(_ spec: VolumeSpec) async throws -> Volume {
        let request = try await request(
            "POST", "/volumes/create", body: try jsonBody(spec), contentType: "application/json")
        return try await send(request, as: Volume.self)
    }

    /// `GET /volumes/{name}`.
    public func inspectVolume(_ name: String) async throws -> Volume {
        try await send(try await request("GET", "/volumes/\(Query.segment(name))"), as: Volume.self)
    }

    /// `GET /volumes`.
    public func listVolumes(filters: DockerFilters = [:]) async throws -> [Volume] {
        var query = Query()
        query.add(filters: filters)
        return try await send(try await request("GET", "/volumes", query: query), as: VolumeList.self).volumes ?? []
    }

    /// `DELETE /volumes/{name}`. 409 while a container uses it.
    public func removeVolume(_ name: String, force: Bool = false) async throws {
        var query = Query()
        query.add("force", force)
        try await send(try await request("DELETE", "/volumes/\(Query.segment(name))", query: query))
    }
}
