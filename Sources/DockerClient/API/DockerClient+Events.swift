extension DockerClient {
    /// `GET /events`: a live stream of engine events.
    ///
    /// The subscription is in place when this returns, so events caused afterwards are not missed.
    /// `filters` e.g. `["type": ["container"], "label": ["lab.managed-by=labctrl"], "event": ["die"]]`;
    /// `since`/`until` are Unix times (with `since`, past events are replayed first; with `until`, the stream
    /// ends there). Without `until` the stream runs until the consuming `Task` is cancelled — iteration then
    /// returns `nil` and the transfer is aborted — or until the engine goes away (an error is thrown).
    public func events(filters: DockerFilters = [:], since: Int64? = nil, until: Int64? = nil) async throws
        -> DockerEventStream
    {
        var query = Query()
        query.add("since", since.map(String.init))
        query.add("until", until.map(String.init))
        query.add(filters: filters)
        let request = try await request("GET", "/events", query: query, timeout: .none)
        return DockerEventStream(chunks: try await openStream(request).body, request: request.summary)
    }
}
