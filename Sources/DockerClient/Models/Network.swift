/// `GET /networks/{id}` and entries of `GET /networks`.
public struct Network: Codable, Sendable {
    /// A container attached to the network (only in inspect).
    public struct Attachment: Codable, Sendable {
        public var name: String?
        public var endpointID: String?
        public var ipv4Address: String?

        enum CodingKeys: String, CodingKey { case name = "Name", endpointID = "EndpointID", ipv4Address = "IPv4Address" }
    }

    public var id: String
    public var name: String
    public var driver: String?
    public var scope: String?
    public var created: String?
    public var `internal`: Bool?
    public var attachable: Bool?
    public var labels: [String: String]?
    public var options: [String: String]?
    /// Attached containers keyed by container id.
    public var containers: [String: Attachment]?

    enum CodingKeys: String, CodingKey {
        case id = "Id", name = "Name", driver = "Driver", scope = "Scope", created = "Created", `internal` = "Internal"
        case attachable = "Attachable", labels = "Labels", options = "Options", containers = "Containers"
    }
}

/// Body of `POST /networks/create`.
public struct NetworkSpec: Encodable, Sendable {
    public var name: String
    /// `bridge` (default), `overlay`, `macvlan`, …
    public var driver: String?
    /// No route to the outside.
    public var `internal`: Bool?
    public var attachable: Bool?
    public var labels: [String: String]?
    public var options: [String: String]?
    /// Fail if a network with this name exists (the engine otherwise allows duplicates).
    public var checkDuplicate: Bool?

    public init(
        name: String, driver: String? = nil, internal: Bool? = nil, attachable: Bool? = nil,
        labels: [String: String]? = nil, options: [String: String]? = nil, checkDuplicate: Bool? = true
    ) {
        self.name = name
        self.driver = driver
        self.internal = `internal`
        self.attachable = attachable
        self.labels = labels
        self.options = options
        self.checkDuplicate = checkDuplicate
    }

    enum CodingKeys: String, CodingKey {
        case name = "Name", driver = "Driver", `internal` = "Internal", attachable = "Attachable", labels = "Labels"
        case options = "Options", checkDuplicate = "CheckDuplicate"
    }
}

/// Reply of `POST /networks/create`.
public struct NetworkCreateResponse: Codable, Sendable {
    public var id: String
    public var warning: String?

    enum CodingKeys: String, CodingKey { case id = "Id", warning = "Warning" }
}
