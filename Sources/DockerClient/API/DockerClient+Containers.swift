extension DockerClient {
    /// `POST /containers/create`. A taken `name` fails with a 409 ``DockerError`` (``DockerError/isConflict``);
    /// a missing image with 404.
    public func createContainer(_ spec: ContainerSpec, name: String? = nil) async throws -> ContainerCreateResponse {
        var query = Query()
        query.add("name", name)
        let request = try await request(
            "POST", "/containers/create", query: query, body: try jsonBody(spec), contentType: "application/json")
        return try await send(request, as: ContainerCreateResponse.self)
    }

    /// `POST /containers/{id}/start`. Starting a running container succeeds (the engine answers 304).
    public func startContainer(_ id: String) async throws {
        try await send(try await request("POST", "/containers/\(Query.segment(id))/start"))
    }

    /// `POST /containers/{id}/stop`: SIGTERM (or the container's stop signal), then SIGKILL after `timeout`
    /// seconds (`nil`: the container's `StopTimeout`, default 10). Stopping a stopped container succeeds.
    /// The HTTP timeout is extended by the grace period.
    public func stopContainer(_ id: String, timeout: Int? = nil) async throws {
        var query = Query()
        query.add("t", timeout)
        let grace = Duration.seconds(timeout ?? 10)
        try await send(
            try await request(
                "POST", "/containers/\(Query.segment(id))/stop", query: query,
                timeout: .custom(configuration.requestTimeout + grace)))
    }

    /// `POST /containers/{id}/restart`.
    public func restartContainer(_ id: String, timeout: Int? = nil) async throws {
        var query = Query()
        query.add("t", timeout)
        let grace = Duration.seconds(timeout ?? 10)
        try await send(
            try await request(
                "POST", "/containers/\(Query.segment(id))/restart", query: query,
                timeout: .custom(configuration.requestTimeout + grace)))
    }

    /// `POST /containers/{id}/kill`. A container that is not running gives a 409.
    public func killContainer(_ id: String, signal: String = "SIGKILL") async throws {
        var query = Query()
        query.add("signal", signal)
        try await send(try await request("POST", "/containers/\(Query.segment(id))/kill", query: query))
    }

    /// `DELETE /containers/{id}`. Without `force` a running container gives a 409; `removeVolumes` also
    /// removes anonymous volumes.
    public func removeContainer(_ id: String, force: Bool = false, removeVolumes: Bool = false) async throws {
        var query = Query()
        query.add("force", force)
        query.add("v", removeVolumes)
        try await send(try await request("DELETE", "/containers/\(Query.segment(id))", query: query))
    }

    /// `GET /containers/{id}/json` by id, id prefix or name.
    public func inspectContainer(_ id: String) async throws -> ContainerInspect {
        try await send(try await request("GET", "/containers/\(Query.segment(id))/json"), as: ContainerInspect.self)
    }

    /// `GET /containers/json`. `all` includes stopped containers; `filters` e.g. `.label("lab.user", "bob")`.
    public func listContainers(all: Bool = false, filters: DockerFilters = [:]) async throws -> [ContainerSummary] {
        var query = Query()
        if all { query.add("all", true) }
        query.add(filters: filters)
        return try await send(try await request("GET", "/containers/json", query: query), as: [ContainerSummary].self)
    }

    /// `POST /containers/{id}/wait`: returns when `condition` is met. No timeout unless given.
    ///
    /// To catch the exit of a container you are about to start, use ``registerWait(_:condition:timeout:)``
    /// before `start` instead: it returns only once the engine has registered the waiter.
    public func waitContainer(
        _ id: String, condition: WaitCondition = .notRunning, timeout: Duration? = nil
    ) async throws -> ContainerWaitResponse {
        try await registerWait(id, condition: condition, timeout: timeout).result()
    }

    /// Registers a wait with the engine and returns once it is in place; `result()` then awaits the exit.
    public func registerWait(
        _ id: String, condition: WaitCondition = .nextExit, timeout: Duration? = nil
    ) async throws -> ContainerWait {
        var query = Query()
        query.add("condition", condition.rawValue)
        let request = try await request(
            "POST", "/containers/\(Query.segment(id))/wait", query: query,
            timeout: timeout.map { .custom($0) } ?? .none)
        return ContainerWait(response: try await openStream(request), request: request.summary)
    }
}

/// A wait registered with ``DockerClient/registerWait(_:condition:timeout:)``.
public struct ContainerWait: Sendable {
    let response: HTTPStreamResponse
    let request: String

    /// Awaits the engine's reply: the exit code, or an error message if waiting failed.
    public func result() async throws -> ContainerWaitResponse {
        var body: [UInt8] = []
        for try await chunk in response.body { body.append(contentsOf: chunk) }
        try Task.checkCancellation()
        return try DockerClient.decode(ContainerWaitResponse.self, from: body, request: request)
    }
}
