/// `GET /version`: the engine's build and API versions.
public struct SystemVersion: Codable, Sendable {
    public var version: String
    public var apiVersion: String
    public var minAPIVersion: String?
    public var gitCommit: String?
    public var goVersion: String?
    public var os: String?
    public var arch: String?
    public var kernelVersion: String?

    enum CodingKeys: String, CodingKey {
        case version = "Version", apiVersion = "ApiVersion", minAPIVersion = "MinAPIVersion", gitCommit = "GitCommit"
        case goVersion = "GoVersion", os = "Os", arch = "Arch", kernelVersion = "KernelVersion"
    }
}

/// `GET /info`: a subset of the engine's system-wide information.
public struct SystemInfo: Codable, Sendable {
    public var id: String?
    public var name: String?
    public var serverVersion: String?
    public var containers: Int?
    public var containersRunning: Int?
    public var containersPaused: Int?
    public var containersStopped: Int?
    public var images: Int?
    public var driver: String?
    public var dockerRootDir: String?
    public var memTotal: Int64?
    public var ncpu: Int?
    public var operatingSystem: String?
    public var osType: String?
    public var architecture: String?
    public var kernelVersion: String?
    public var cgroupDriver: String?
    public var cgroupVersion: String?
    public var securityOptions: [String]?
    public var labels: [String]?
    /// Open `/events` subscriptions on the engine.
    public var eventsListeners: Int?

    enum CodingKeys: String, CodingKey {
        case id = "ID", name = "Name", serverVersion = "ServerVersion", containers = "Containers"
        case containersRunning = "ContainersRunning", containersPaused = "ContainersPaused"
        case containersStopped = "ContainersStopped", images = "Images", driver = "Driver"
        case dockerRootDir = "DockerRootDir", memTotal = "MemTotal", ncpu = "NCPU"
        case operatingSystem = "OperatingSystem", osType = "OSType", architecture = "Architecture"
        case kernelVersion = "KernelVersion", cgroupDriver = "CgroupDriver", cgroupVersion = "CgroupVersion"
        case securityOptions = "SecurityOptions", labels = "Labels", eventsListeners = "NEventsListener"
    }
}
