/// What ``DockerClient/logs(_:options:)`` returns.
public struct LogsOptions: Sendable {
    public var stdout: Bool
    public var stderr: Bool
    /// Keep the stream open and deliver new output until the container stops (or the consumer cancels).
    public var follow: Bool
    /// Prefix each line with an RFC 3339 timestamp.
    public var timestamps: Bool
    /// Number of lines from the end, or `nil` for all.
    public var tail: Int?
    /// Only output after this Unix time.
    public var since: Int64?
    /// Whether the container has a TTY (raw, not multiplexed output). `nil` asks the engine (one inspect).
    public var tty: Bool?

    public init(
        stdout: Bool = true, stderr: Bool = true, follow: Bool = false, timestamps: Bool = false, tail: Int? = nil,
        since: Int64? = nil, tty: Bool? = nil
    ) {
        self.stdout = stdout
        self.stderr = stderr
        self.follow = follow
        self.timestamps = timestamps
        self.tail = tail
        self.since = since
        self.tty = tty
    }
}

extension DockerClient {
    /// `GET /containers/{id}/logs` as a stream of ``LogChunk``s tagged stdout or stderr.
    public func logs(_ id: String, options: LogsOptions = LogsOptions()) async throws -> LogStream {
        let tty: Bool
        if let known = options.tty {
            tty = known
        } else {
            tty = try await inspectContainer(id).config.tty ?? false
        }
        var query = Query()
        query.add("stdout", options.stdout)
        query.add("stderr", options.stderr)
        if options.follow { query.add("follow", true) }
        if options.timestamps { query.add("timestamps", true) }
        query.add("tail", options.tail.map(String.init) ?? "all")
        query.add("since", options.since.map(String.init))
        let request = try await request(
            "GET", "/containers/\(Query.segment(id))/logs", query: query, timeout: options.follow ? .none : .standard)
        return LogStream(chunks: try await openStream(request).body, multiplexed: !tty)
    }

    /// All output so far (no `follow`), as separate stdout and stderr texts.
    public func collectLogs(_ id: String, options: LogsOptions = LogsOptions()) async throws -> (
        stdout: String, stderr: String
    ) {
        var out: [UInt8] = []
        var err: [UInt8] = []
        var options = options
        options.follow = false
        for try await chunk in try await logs(id, options: options) {
            if chunk.source == .stderr { err += chunk.bytes } else { out += chunk.bytes }
        }
        try Task.checkCancellation()  // a cancelled stream ends early; do not pass that off as all output
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }
}
