/// # DockerClient
///
/// An `async`, `Sendable` client for the Docker Engine API (v1.41), built on libcurl.
///
/// ```swift
/// let docker = try DockerClient.fromEnvironment()          // DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
/// try await docker.ping()
/// let id = try await docker.createContainer(
///     ContainerSpec(image: "lab-base:bookworm", cmd: ["sleep", "infinity"], labels: ["lab.user": "bob"],
///                   hostConfig: HostConfig(networkMode: "lab-network", memory: 512 << 20,
///                                          capDrop: ["ALL"], securityOpt: ["no-new-privileges"])),
///     name: "lab-bob").id
/// try await docker.startContainer(id)
/// for try await event in try await docker.events(filters: ["label": ["lab.managed-by=labctrl"]]) { … }
/// try await docker.removeContainer(id, force: true)
/// ```
///
/// Operations, grouped by file:
/// - System (`DockerClient+System.swift`): ``ping()``, ``version()``, ``info()``, ``apiVersion()``.
/// - Containers (`+Containers.swift`): ``createContainer(_:name:)``, ``startContainer(_:)``,
///   ``stopContainer(_:timeout:)``, ``killContainer(_:signal:)``, ``restartContainer(_:timeout:)``,
///   ``removeContainer(_:force:removeVolumes:)``, ``inspectContainer(_:)``, ``listContainers(all:filters:)``,
///   ``waitContainer(_:condition:timeout:)``.
/// - Logs (`+Logs.swift`): ``logs(_:options:)`` — an `AsyncSequence` of ``LogChunk``s, stdout and stderr
///   demultiplexed.
/// - Exec (`+Exec.swift`): ``createExec(_:_:)``, ``startExec(_:)``, ``inspectExec(_:)`` and the one-shot
///   ``exec(_:command:user:workingDir:environment:timeout:)``.
/// - Images (`+Images.swift`): ``inspectImage(_:)``, ``listImages(all:filters:)``, ``pullImage(_:tag:)``
///   (streamed ``ProgressMessage``s), ``importImage(tarFile:repository:tag:)``, ``loadImages(tarFile:)``,
///   ``buildImage(context:tag:options:)``, ``saveImages(_:toFile:)``, ``removeImage(_:force:)``,
///   ``tagImage(_:repository:tag:)``.
/// - Networks (`+Networks.swift`): ``listNetworks(filters:)``, ``inspectNetwork(_:)``, ``createNetwork(_:)``,
///   ``connectNetwork(_:container:aliases:)``, ``disconnectNetwork(_:container:force:)``, ``removeNetwork(_:)``.
/// - Volumes (`+Volumes.swift`): ``createVolume(_:)``, ``inspectVolume(_:)``, ``listVolumes(filters:)``,
///   ``removeVolume(_:force:)``.
/// - Events (`+Events.swift`): ``events(filters:since:until:)`` — a long-lived `AsyncSequence` of
///   ``DockerEvent``s; it is subscribed when the call returns, and ends (returns `nil`) when the consuming
///   `Task` is cancelled.
///
/// Errors are ``DockerError``s: ``DockerError/Code/api`` with the HTTP `status` and the daemon's `message`
/// (``DockerError/isNotFound``, ``DockerError/isConflict``), and distinct codes for an unreachable engine,
/// timeouts and TLS failures. Cancelling the calling `Task` aborts the transfer and throws `CancellationError`.
///
/// Design: every request is a libcurl easy handle run by one curl *multi* handle on a dedicated thread per
/// client (see `CurlLoop`), so nothing blocks Swift's cooperative pool, many requests run at once, and
/// keep-alive connections are reused. Copies of a client share that thread; it stops when the last copy
/// and the last open stream are gone.
import Foundation
import Synchronization

/// An async, typed Docker Engine API client. See the overview at the top of this file.
public struct DockerClient: Sendable {
    /// The settings this client was made with.
    public let configuration: Configuration
    let transport: CurlTransport
    private let negotiation: VersionNegotiation

    /// A client for `configuration` (default: `/var/run/docker.sock`, version negotiated on first use).
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.transport = CurlTransport(endpoint: TransportEndpoint(configuration))
        self.negotiation = VersionNegotiation()
    }

    /// A client configured like the Docker CLI, from `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(DockerError) -> DockerClient {
        DockerClient(configuration: try .fromEnvironment(environment))
    }

    private init(configuration: Configuration, transport: CurlTransport, negotiation: VersionNegotiation) {
        self.configuration = configuration
        self.transport = transport
        self.negotiation = negotiation
    }

    /// A copy that uses `timeout` as its default request timeout; it shares this client's connections.
    public func withRequestTimeout(_ timeout: Duration) -> DockerClient {
        var configuration = self.configuration
        configuration.requestTimeout = timeout
        return DockerClient(configuration: configuration, transport: transport, negotiation: negotiation)
    }

    /// The API version in use: the pinned one, or `min(daemon's ApiVersion, Configuration.maximumAPIVersion)`
    /// (raised to the daemon's `MinAPIVersion` if that is higher), negotiated once with `GET /version`.
    public func apiVersion() async throws -> String {
        if let pinned = configuration.apiVersion { return pinned }
        return try await negotiation.version { try await self.version() }
    }
}

/// Caches the negotiated API version; concurrent first calls share one `GET /version`.
final class VersionNegotiation: Sendable {
    private let state = Mutex<Task<String, any Error>?>(nil)

    func version(_ fetch: @escaping @Sendable () async throws -> SystemVersion) async throws -> String {
        let task = state.withLock { current in
            if let current { return current }
            let task = Task {
                let server = try await fetch()
                return Self.choose(server: server, maximum: DockerClient.Configuration.maximumAPIVersion)
            }
            current = task
            return task
        }
        do {
            return try await task.value
        } catch {
            state.withLock { if $0 == task { $0 = nil } }  // retry on the next call
            throw error
        }
    }

    static func choose(server: SystemVersion, maximum: String) -> String {
        var chosen = compare(server.apiVersion, maximum) < 0 ? server.apiVersion : maximum
        if let minimum = server.minAPIVersion, compare(chosen, minimum) < 0 { chosen = minimum }
        return chosen
    }

    /// Compares dotted versions numerically ("1.9" < "1.41").
    static func compare(_ a: String, _ b: String) -> Int {
        let x = a.split(separator: ".").map { Int($0) ?? 0 }
        let y = b.split(separator: ".").map { Int($0) ?? 0 }
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0
            let r = i < y.count ? y[i] : 0
            if l != r { return l < r ? -1 : 1 }
        }
        return 0
    }
}
