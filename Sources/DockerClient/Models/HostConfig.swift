/// Host-side settings of a container: mounts, network, limits and hardening. Used both to create a
/// container and as read back by inspect. `nil` fields are left out of the request (engine default).
public struct HostConfig: Codable, Sendable, Equatable {
    /// `host-path:container-path[:ro]` bind mounts.
    public var binds: [String]?
    /// Structured mounts (bind, volume, tmpfs).
    public var mounts: [Mount]?
    /// `bridge`, `host`, `none`, `container:<id>` or a user-defined network's name.
    public var networkMode: String?
    /// Memory limit in bytes (0 = unlimited).
    public var memory: Int64?
    /// Memory + swap limit in bytes; `-1` = unlimited swap.
    public var memorySwap: Int64?
    /// CPU quota in units of 1e-9 CPUs (`1_500_000_000` = 1.5 CPUs).
    public var nanoCpus: Int64?
    /// Maximum number of processes (`nil`/0 = unlimited).
    public var pidsLimit: Int64?
    /// e.g. `["no-new-privileges"]`, `["seccomp=unconfined"]`.
    public var securityOpt: [String]?
    public var capAdd: [String]?
    public var capDrop: [String]?
    /// Run an init process (tini) as PID 1 that forwards signals and reaps zombies.
    public var initProcess: Bool?
    public var readonlyRootfs: Bool?
    public var restartPolicy: RestartPolicy?
    /// Remove the container when it exits.
    public var autoRemove: Bool?
    /// `path: options` tmpfs mounts, e.g. `["/tmp": "rw,size=64m"]`.
    public var tmpfs: [String: String]?
    /// `host:ip` entries added to `/etc/hosts`.
    public var extraHosts: [String]?
    /// Size of `/dev/shm` in bytes.
    public var shmSize: Int64?
    public var privileged: Bool?

    public init(
        binds: [String]? = nil, mounts: [Mount]? = nil, networkMode: String? = nil, memory: Int64? = nil,
        memorySwap: Int64? = nil, nanoCpus: Int64? = nil, pidsLimit: Int64? = nil, securityOpt: [String]? = nil,
        capAdd: [String]? = nil, capDrop: [String]? = nil, initProcess: Bool? = nil,
        readonlyRootfs: Bool? = nil, restartPolicy: RestartPolicy? = nil, autoRemove: Bool? = nil,
        tmpfs: [String: String]? = nil, extraHosts: [String]? = nil, shmSize: Int64? = nil, privileged: Bool? = nil
    ) {
        self.binds = binds
        self.mounts = mounts
        self.networkMode = networkMode
        self.memory = memory
        self.memorySwap = memorySwap
        self.nanoCpus = nanoCpus
        self.pidsLimit = pidsLimit
        self.securityOpt = securityOpt
        self.capAdd = capAdd
        self.capDrop = capDrop
        self.initProcess = initProcess
        self.readonlyRootfs = readonlyRootfs
        self.restartPolicy = restartPolicy
        self.autoRemove = autoRemove
        self.tmpfs = tmpfs
        self.extraHosts = extraHosts
        self.shmSize = shmSize
        self.privileged = privileged
    }

    enum CodingKeys: String, CodingKey {
        case binds = "Binds", mounts = "Mounts", networkMode = "NetworkMode", memory = "Memory"
        case memorySwap = "MemorySwap", nanoCpus = "NanoCpus", pidsLimit = "PidsLimit", securityOpt = "SecurityOpt"
        case capAdd = "CapAdd", capDrop = "CapDrop", initProcess = "Init", readonlyRootfs = "ReadonlyRootfs"
        case restartPolicy = "RestartPolicy", autoRemove = "AutoRemove", tmpfs = "Tmpfs", extraHosts = "ExtraHosts"
        case shmSize = "ShmSize", privileged = "Privileged"
    }
}

/// What the engine does when a container exits.
public struct RestartPolicy: Codable, Sendable, Equatable {
    /// `""`/`no`, `always`, `unless-stopped` or `on-failure`.
    public var name: String
    public var maximumRetryCount: Int?

    public init(name: String, maximumRetryCount: Int? = nil) {
        self.name = name
        self.maximumRetryCount = maximumRetryCount
    }

    public static let no = RestartPolicy(name: "no")
    public static let always = RestartPolicy(name: "always")
    public static let unlessStopped = RestartPolicy(name: "unless-stopped")
    public static func onFailure(maximumRetryCount: Int) -> RestartPolicy {
        RestartPolicy(name: "on-failure", maximumRetryCount: maximumRetryCount)
    }

    enum CodingKeys: String, CodingKey { case name = "Name", maximumRetryCount = "MaximumRetryCount" }
}

/// A structured mount for ``HostConfig/mounts``.
public struct Mount: Codable, Sendable, Equatable {
    /// `bind`, `volume` or `tmpfs`.
    public var type: String
    /// Host path (bind) or volume name (volume); empty for tmpfs.
    public var source: String?
    /// Path inside the container.
    public var target: String
    public var readOnly: Bool?

    public init(type: String, source: String? = nil, target: String, readOnly: Bool? = nil) {
        self.type = type
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    public static func bind(_ source: String, _ target: String, readOnly: Bool = false) -> Mount {
        Mount(type: "bind", source: source, target: target, readOnly: readOnly)
    }

    public static func volume(_ name: String, _ target: String, readOnly: Bool = false) -> Mount {
        Mount(type: "volume", source: name, target: target, readOnly: readOnly)
    }

    public static func tmpfs(_ target: String) -> Mount { Mount(type: "tmpfs", target: target) }

    enum CodingKeys: String, CodingKey { case type = "Type", source = "Source", target = "Target", readOnly = "ReadOnly" }
}
