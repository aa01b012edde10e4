/// Everything needed to create a container (`POST /containers/create`): the image and process, labels,
/// and ``HostConfig``. The container's name is passed separately to ``DockerClient/createContainer(_:name:)``.
public struct ContainerSpec: Encodable, Sendable, Equatable {
    public var image: String
    /// Arguments after the entrypoint; the image's `CMD` when `nil`.
    public var cmd: [String]?
    public var entrypoint: [String]?
    /// `NAME=value` entries.
    public var env: [String]?
    public var labels: [String: String]?
    /// `user`, `uid` or `uid:gid`.
    public var user: String?
    public var workingDir: String?
    public var hostname: String?
    public var tty: Bool?
    public var openStdin: Bool?
    public var stopSignal: String?
    /// Seconds `docker stop` waits before SIGKILL, when the caller gives no timeout.
    public var stopTimeout: Int?
    public var hostConfig: HostConfig?
    /// Per-network endpoint settings (aliases) for the network(s) joined at create time.
    public var networkingConfig: NetworkingConfig?

    public init(
        image: String, cmd: [String]? = nil, entrypoint: [String]? = nil, env: [String]? = nil,
        labels: [String: String]? = nil, user: String? = nil, workingDir: String? = nil, hostname: String? = nil,
        tty: Bool? = nil, openStdin: Bool? = nil, stopSignal: String? = nil, stopTimeout: Int? = nil,
        hostConfig: HostConfig? = nil, networkingConfig: NetworkingConfig? = nil
    ) {
        self.image = image
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.env = env
        self.labels = labels
        self.user = user
        self.workingDir = workingDir
        self.hostname = hostname
        self.tty = tty
        self.openStdin = openStdin
        self.stopSignal = stopSignal
        self.stopTimeout = stopTimeout
        self.hostConfig = hostConfig
        self.networkingConfig = networkingConfig
    }

    enum CodingKeys: String, CodingKey {
        case image = "Image", cmd = "Cmd", entrypoint = "Entrypoint", env = "Env", labels = "Labels", user = "User"
        case workingDir = "WorkingDir", hostname = "Hostname", tty = "Tty", openStdin = "OpenStdin"
        case stopSignal = "StopSignal", stopTimeout = "StopTimeout", hostConfig = "HostConfig"
        case networkingConfig = "NetworkingConfig"
    }
}

/// `NetworkingConfig` of a create request: endpoint settings keyed by network name.
public struct NetworkingConfig: Codable, Sendable, Equatable {
    public var endpointsConfig: [String: EndpointConfig]

    public init(endpointsConfig: [String: EndpointConfig]) { self.endpointsConfig = endpointsConfig }

    enum CodingKeys: String, CodingKey { case endpointsConfig = "EndpointsConfig" }
}

/// Settings of one container's endpoint on a network.
public struct EndpointConfig: Codable, Sendable, Equatable {
    public var aliases: [String]?

    public init(aliases: [String]? = nil) { self.aliases = aliases }

    enum CodingKeys: String, CodingKey { case aliases = "Aliases" }
}

/// Reply of `POST /containers/create`.
public struct ContainerCreateResponse: Codable, Sendable {
    public var id: String
    public var warnings: [String]?

    enum CodingKeys: String, CodingKey { case id = "Id", warnings = "Warnings" }
}
