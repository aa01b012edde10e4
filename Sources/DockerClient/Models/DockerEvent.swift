/// One message of `GET /events`: something happened to a container, image, network, volume, …
public struct DockerEvent: Codable, Sendable {
    /// The object the event is about.
    public struct Actor: Codable, Sendable {
        /// Container id, image name, network id, …
        public var id: String
        /// Labels of the container plus `name`, `image`, and for `die` the `exitCode`.
        public var attributes: [String: String]?

        enum CodingKeys: String, CodingKey { case id = "ID", attributes = "Attributes" }
    }

    /// `container`, `image`, `network`, `volume`, `daemon`, …
    public var type: String
    /// `create`, `start`, `die`, `destroy`, `oom`, `kill`, `exec_start: sh -c …`, `health_status: healthy`, …
    public var action: String
    public var actor: Actor
    /// `local` or `swarm`.
    public var scope: String?
    /// Unix time in seconds.
    public var time: Int64?
    public var timeNano: Int64?

    /// ``action`` up to a `:` (so `exec_start: sh -c x` is `exec_start`).
    public var actionName: String {
        action.firstIndex(of: ":").map { String(action[..<$0]) } ?? action
    }

    enum CodingKeys: String, CodingKey {
        case type = "Type", action = "Action", actor = "Actor", scope = "scope", time = "time", timeNano = "timeNano"
    }
}
