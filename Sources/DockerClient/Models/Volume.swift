/// A named volume.
public struct Volume: Codable, Sendable {
    public var name: String
    public var driver: String?
    public var mountpoint: String?
    public var labels: [String: String]?
    public var scope: String?
    public var createdAt: String?

    enum CodingKeys: String, CodingKey {
        case name = "Name", driver = "Driver", mountpoint = "Mountpoint", labels = "Labels", scope = "Scope"
        case createdAt = "CreatedAt"
    }
}

/// Body of `POST /volumes/create`.
public struct VolumeSpec: Encodable, Sendable {
    /// Empty or `nil` lets the engine pick a random name.
    public var name: String?
    public var driver: String?
    public var driverOpts: [String: String]?
    public var labels: [String: String]?

    public init(
        name: String? = nil, driver: String? = nil, driverOpts: [String: String]? = nil,
        labels: [String: String]? = nil
    ) {
        self.name = name
        self.driver = driver
        self.driverOpts = driverOpts
        self.labels = labels
    }

    enum CodingKeys: String, CodingKey { case name = "Name", driver = "Driver", driverOpts = "DriverOpts", labels = "Labels" }
}

/// Reply of `GET /volumes`.
struct VolumeList: Codable, Sendable {
    var volumes: [Volume]?
    var warnings: [String]?

    enum CodingKeys: String, CodingKey { case volumes = "Volumes", warnings = "Warnings" }
}
