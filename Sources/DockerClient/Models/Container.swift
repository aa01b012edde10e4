/// `GET /containers/{id}/json`: a container's configuration and state.
public struct ContainerInspect: Codable, Sendable {
    public var id: String
    /// The name with the engine's leading slash, e.g. `/lab-bob`; see ``shortName``.
    public var name: String
    public var created: String?
    public var path: String?
    public var args: [String]?
    public var state: ContainerState
    /// The image id (`sha256:…`); the reference the container was created from is ``config``'s `image`.
    public var image: String?
    public var restartCount: Int?
    public var config: ContainerConfig
    public var hostConfig: HostConfig
    public var networkSettings: NetworkSettings?
    public var mounts: [MountPoint]?

    /// ``name`` without the leading `/`.
    public var shortName: String { name.hasPrefix("/") ? String(name.dropFirst()) : name }

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", created = "Created", path = "Path", args = "Args", state = "State"
        case image = "Image", restartCount = "RestartCount", config = "Config", hostConfig = "HostConfig"
        case networkSettings = "NetworkSettings", mounts = "Mounts"
    }
}

/// The run state inside ``ContainerInspect``.
public struct ContainerState: Codable, Sendable {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    public var status: String
    public var running: Bool
    public var paused: Bool?
    public var restarting: Bool?
    public var oomKilled: Bool?
    public var dead: Bool?
    public var pid: Int?
    public var exitCode: Int?
    public var error: String?
    public var startedAt: String?
    public var finishedAt: String?

    enum CodingKeys: String, CodingKey {
        case status = "Status", running = "Running", paused = "Paused", restarting = "Restarting"
        case oomKilled = "OOMKilled", dead = "Dead", pid = "Pid", exitCode = "ExitCode", error = "Error"
        case startedAt = "StartedAt", finishedAt = "FinishedAt"
    }
}

/// The process and metadata part of an inspected container (the create request's non-host fields).
public struct ContainerConfig: Codable, Sendable {
    public var hostname: String?
    public var user: String?
    public var env: [String]?
    public var cmd: [String]?
    public var entrypoint: [String]?
    /// The image reference the container was created from.
    public var image: String?
    public var workingDir: String?
    public var labels: [String: String]?
    public var tty: Bool?
    public var openStdin: Bool?
    public var stopSignal: String?
    public var stopTimeout: Int?

    enum CodingKeys: String, CodingKey {
        case hostname = "Hostname", user = "User", env = "Env", cmd = "Cmd", entrypoint = "Entrypoint"
        case image = "Image", workingDir = "WorkingDir", labels = "Labels", tty = "Tty", openStdin = "OpenStdin"
        case stopSignal = "StopSignal", stopTimeout = "StopTimeout"
    }
}

/// Network attachments of an inspected container.
public struct NetworkSettings: Codable, Sendable {
    /// Keyed by network name.
    public var networks: [String: EndpointSettings]?

    enum CodingKeys: String, CodingKey { case networks = "Networks" }
}

/// One network attachment: ids, addresses, aliases.
public struct EndpointSettings: Codable, Sendable {
    public var networkID: String?
    public var endpointID: String?
    public var ipAddress: String?
    public var gateway: String?
    public var macAddress: String?
    public var aliases: [String]?

    enum CodingKeys: String, CodingKey {
        case networkID = "NetworkID", endpointID = "EndpointID", ipAddress = "IPAddress", gateway = "Gateway"
        case macAddress = "MacAddress", aliases = "Aliases"
    }
}

/// A mount as the engine reports it on an inspected container.
public struct MountPoint: Codable, Sendable {
    public var type: String?
    /// Volume name, for volume mounts.
    public var name: String?
    public var source: String?
    public var destination: String
    public var mode: String?
    /// Writable.
    public var rw: Bool?

    enum CodingKeys: String, CodingKey {
        case type = "Type", name = "Name", source = "Source", destination = "Destination", mode = "Mode", rw = "RW"
    }
}

/// One entry of `GET /containers/json`.
public struct ContainerSummary: Codable, Sendable {
    public var id: String
    /// Names with the engine's leading slash.
    public var names: [String]?
    public var image: String?
    public var imageID: String?
    public var command: String?
    /// Unix time of creation.
    public var created: Int64?
    /// `created`, `running`, `exited`, …
    public var state: String?
    /// Human text such as "Up 3 minutes".
    public var status: String?
    public var labels: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id = "Id", names = "Names", image = "Image", imageID = "ImageID", command = "Command"
        case created = "Created", state = "State", status = "Status", labels = "Labels"
    }
}

/// Reply of `POST /containers/{id}/wait`.
public struct ContainerWaitResponse: Codable, Sendable {
    public struct WaitError: Codable, Sendable {
        public var message: String?
        enum CodingKeys: String, CodingKey { case message = "Message" }
    }

    public var statusCode: Int
    public var error: WaitError?

    enum CodingKeys: String, CodingKey { case statusCode = "StatusCode", error = "Error" }
}

/// Which state change `wait` waits for.
public struct WaitCondition: Sendable, Hashable {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// Returns at once if the container is not running (the default).
    public static let notRunning = WaitCondition("not-running")
    /// The next exit, even if the container is not running now (register before `start`).
    public static let nextExit = WaitCondition("next-exit")
    /// The container is removed.
    public static let removed = WaitCondition("removed")
}
