/// `GET /images/{name}/json`.
public struct ImageInspect: Codable, Sendable {
    public var id: String
    public var repoTags: [String]?
    public var repoDigests: [String]?
    public var created: String?
    public var size: Int64?
    public var architecture: String?
    public var os: String?
    /// Defaults for containers made from this image (`Cmd`, `Env`, `Labels`, …).
    public var config: ContainerConfig?

    enum CodingKeys: String, CodingKey {
        case id = "Id", repoTags = "RepoTags", repoDigests = "RepoDigests", created = "Created", size = "Size"
        case architecture = "Architecture", os = "Os", config = "Config"
    }
}

/// One entry of `GET /images/json`.
public struct ImageSummary: Codable, Sendable {
    public var id: String
    public var parentID: String?
    public var repoTags: [String]?
    public var repoDigests: [String]?
    /// Unix time of creation.
    public var created: Int64?
    public var size: Int64?
    public var labels: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id = "Id", parentID = "ParentId", repoTags = "RepoTags", repoDigests = "RepoDigests"
        case created = "Created", size = "Size", labels = "Labels"
    }
}

/// One JSON line of a streamed image operation (pull, import, load, build).
///
/// Pulls report `status`/`id`/`progressDetail`; builds report `stream` text and `aux.ID`; a failure is a
/// line with `error` (the stream then throws ``DockerError/Code/operationFailed``).
public struct ProgressMessage: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var current: Int64?
        public var total: Int64?
    }

    public struct ErrorDetail: Codable, Sendable {
        public var code: Int?
        public var message: String?
    }

    public struct Aux: Codable, Sendable {
        /// Image id produced by a build.
        public var id: String?
        enum CodingKeys: String, CodingKey { case id = "ID" }
    }

    public var status: String?
    /// Layer id (pull) or similar subject of `status`.
    public var id: String?
    /// A text progress bar.
    public var progress: String?
    public var progressDetail: Detail?
    /// Build output text.
    public var stream: String?
    public var aux: Aux?
    public var error: String?
    public var errorDetail: ErrorDetail?
}

/// Options for ``DockerClient/buildImage(context:tag:options:)``.
public struct BuildOptions: Sendable {
    /// Path of the Dockerfile inside the context.
    public var dockerfile: String = "Dockerfile"
    /// Network for `RUN` steps (`host` in a daemon without a bridge).
    public var networkMode: String? = nil
    public var buildArgs: [String: String] = [:]
    public var labels: [String: String] = [:]
    public var noCache: Bool = false
    /// Remove intermediate containers (also after a failed build).
    public var removeIntermediate: Bool = true
    public var pull: Bool = false

    public init(
        dockerfile: String = "Dockerfile", networkMode: String? = nil, buildArgs: [String: String] = [:],
        labels: [String: String] = [:], noCache: Bool = false, removeIntermediate: Bool = true, pull: Bool = false
    ) {
        self.dockerfile = dockerfile
        self.networkMode = networkMode
        self.buildArgs = buildArgs
        self.labels = labels
        self.noCache = noCache
        self.removeIntermediate = removeIntermediate
        self.pull = pull
    }
}
