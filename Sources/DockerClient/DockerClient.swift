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
/// Configuration (`DockerClient+Configuration.swift`): ``fromEnvironment(_:)`` reads `DOCKER_HOST`
/// (`unix:///path`, default `/var/run/docker.sock`; `tcp://host:port`), `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`
/// (`ca.pem`, `cert.pem`, `key.pem`) and `DOCKER_API_VERSION`; or build a ``Configuration`` directly.
/// The API version is negotiated once with `GET /version` (at most 1.41). ``Configuration/requestTimeout``
/// bounds ordinary calls; ``withRequestTimeout(_:)`` makes a copy with another default.
///
/// Operations, grouped by file:
/// - System (`DockerClient+System.swift`): ``ping()``, ``version()``, ``info()``, ``apiVersion()``.
/// - Containers (`+Containers.swift`): ``createContainer(_:name:)``, ``startContainer(_:)``,
///   ``stopContainer(_:timeout:)``, ``killContainer(_:signal:)``, ``restartContainer(_:timeout:)``,
///   ``removeContainer(_:force:removeVolumes:)``, ``inspectContainer(_:)``, ``listContainers(all:filters:)``,
///   ``waitContainer(_:condition:timeout:)`` and ``registerWait(_:condition:timeout:)`` (wait registered
///   before `start`, so a quick exit is not missed).
/// - Logs (`+Logs.swift`): ``logs(_:options:)`` — an `AsyncSequence` of ``LogChunk``s, stdout and stderr
///   demultiplexed (`follow` keeps it open) — and ``collectLogs(_:options:)``.
/// - Exec (`+Exec.swift`): ``createExec(_:_:)``, ``startExec(_:tty:timeout:)``, ``inspectExec(_:)`` and the one-shot
///   ``exec(_:command:user:workingDir:environment:timeout:)``.
/// - Images (`+Images.swift`): ``inspectImage(_:)``, ``listImages(all:filters:)``, ``pullImage(_:tag:auth:)``
///   and ``pushImage(_:tag:auth:)`` (streamed ``ProgressMessage``s), ``importImage(_:repository:tag:message:)``
///   (a rootfs tar), ``loadImages(_:)`` / ``saveImages(_:toFile:)`` (`docker save` archives),
///   ``buildImage(context:tag:options:)`` (a context tar, see ``TarArchive``), ``tagImage(_:repository:tag:)``,
///   ``removeImage(_:force:)``.
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
/// Streams (events, logs, progress, exec output) buffer what the engine sends until it is read: iterate
/// them, or drop/cancel them to abort the transfer.
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
        if let cached = negotiation.cached { return cached }
        return try await negotiation.version { try await self.version() }
    }
}

/// Caches the negotiated API version; concurrent first calls share one `GET /version`, later calls read
/// the cached string without awaiting anything.
final class VersionNegotiation: Sendable {
    private enum State {
        case none
        case negotiating(Task<String, any Error>)
        case done(String)
    }

    private let state = Mutex<State>(.none)

    func version(_ fetch: @escaping @Sendable () async throws -> SystemVersion) async throws -> String {
        enum Lookup {
            case ready(String)
            case wait(Task<String, any Error>)
        }
        let lookup: Lookup = state.withLock { state in
            switch state {
            case .done(let version):
                return .ready(version)
            case .negotiating(let task):
                return .wait(task)
            case .none:
                // Unstructured: one fetch shared by concurrent first callers, so one caller's cancellation cannot fail the others.
                let task = Task {
                    let server = try await fetch()
                    return Self.choose(server: server, maximum: DockerClient.Configuration.maximumAPIVersion)
                }
                state = .negotiating(task)
                return .wait(task)
            }
        }
        let task: Task<String, any Error>
        switch lookup {
        case .ready(let version): return version
        case .wait(let pending): task = pending
        }
        do {
            let version = try await task.value
            state.withLock { $0 = .done(version) }
            return version
        } catch {
            state.withLock { if case .negotiating(let current) = $0, current == task { $0 = .none } }  // retry next time
            throw error
        }
    }

    /// The negotiated version, if negotiation has finished.
    var cached: String? {
        state.withLock { if case .done(let version) = $0 { version } else { nil } }
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
