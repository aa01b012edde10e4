/// Where a worker's WebSocket server listens.
public struct WorkerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The worker's own secret, sent as `Authorization: Bearer` on every request to it (``WorkerToken``).
    public var token: String
    public init(host: String, port: Int, token: String) {
        self.host = host
        self.port = port
        self.token = token
    }
    public var url: String { "ws://\(host.contains(":") ? "[\(host)]" : host):\(port)/" }
    public var authorization: String { "Bearer \(token)" }
    /// Never prints the token.
    public var description: String { "\(host):\(port)" }
}

/// One running worker as the backend knows it. Everything here can be rebuilt from the backend itself
/// (Docker labels and inspect; for subprocesses, the controller's own children).
public struct WorkerHandle: Sendable, Equatable {
    public var user: UserID
    /// Container id, or `pid:<n>` for a subprocess.
    public var id: String
    public var address: WorkerAddress
    /// Hash of the settings the worker was created with; a different current hash means "recreate when idle".
    public var specHash: String
    /// Wall-clock creation time (seconds since the epoch).
    public var createdAt: Double
    public var adopted: Bool

    public init(user: UserID, id: String, address: WorkerAddress, specHash: String, createdAt: Double, adopted: Bool = false) {
        self.user = user
        self.id = id
        self.address = address
        self.specHash = specHash
        self.createdAt = createdAt
        self.adopted = adopted
    }
}

/// A worker that stopped without being asked to.
/// What a backend reports about its workers on its own.
public enum WorkerIncident: Sendable {
    /// The worker stopped.
    case died(WorkerDeath)
    /// The kernel killed a process inside the worker's memory limit (an agent or one of its tools); the
    /// worker may live on (if it does not, ``died(_:)`` follows with `oomKilled`).
    case memoryKill(user: UserID, id: String, limitBytes: Int64?)
    /// The backend lost its view for a while (the engine restarted) and has it back: deaths in the gap
    /// were not reported, so the hub asks ``WorkerBackend/aliveWorkerIDs()``.
    case reconnected
}

public struct WorkerDeath: Sendable {
    public var user: UserID
    public var id: String
    /// Human-readable cause for the client's `error` event, e.g. "out of memory (OOM killed)".
    public var reason: String
    public var oomKilled: Bool
    public var exitCode: Int?

    public init(user: UserID, id: String, reason: String, oomKilled: Bool = false, exitCode: Int? = nil) {
        self.user = user
        self.id = id
        self.reason = reason
        self.oomKilled = oomKilled
        self.exitCode = exitCode
    }
}

/// Progress steps a backend reports while it brings a worker up (sent to clients as `lab.<step>`).
public enum StartStep: String, Sendable {
    case creating, starting
}

/// Why a worker was stopped (metrics label and log field).
public enum StopReason: String, Sendable, CaseIterable {
    case idle
    case stuck
    case specChanged = "spec_changed"
    case admin
    case dead
    case shutdown
    case failedStart = "failed_start"
    /// It stopped answering (no pong by the ping deadline, or no answer to an upgrade): replaced.
    case unresponsive
}

/// How workers are made: Docker containers (multi mode) or local subprocesses (single mode).
///
/// A backend does not decide *when*: the ``WorkerHub`` serialises per user, tracks activity and asks.
public protocol WorkerBackend: Sendable {
    /// `docker` or `process`, for logs and `/readyz`.
    var kind: String { get }
    /// Hash of the current worker settings (compared with ``WorkerHandle/specHash``).
    var currentSpecHash: String { get }
    /// Workers that already run (multi: labelled containers). Stale stopped ones are removed.
    func adoptExisting() async throws -> [WorkerHandle]
    /// Creates and starts the worker of `user` and returns once it *runs* (readiness is probed by the hub).
    func start(user: UserID, progress: @escaping @Sendable (StartStep) -> Void) async throws -> WorkerHandle
    /// Stops and removes the worker (the workspace stays).
    func stop(_ handle: WorkerHandle, reason: StopReason) async
    /// Called with every worker that dies on its own, as soon as the backend notices.
    func watchIncidents(_ report: @escaping @Sendable (WorkerIncident) async -> Void) async throws
    /// Ids of the workers that exist now and have not exited (used after ``WorkerIncident/reconnected``).
    func aliveWorkerIDs() async throws -> Set<String>
    /// Whether the engine answers (`/readyz`).
    func isHealthy() async -> Bool
    /// Controller shutdown: subprocesses are ended, containers are left running for adoption.
    func shutdown() async
    /// Re-reads what the spec hash depends on outside the configuration (the image id), so a rebuilt
    /// image makes running workers outdated. Called before each reaper pass.
    func refreshSpec() async
}

extension WorkerBackend {
    public func refreshSpec() async {}
}

/// A backend error worth showing to the user in an `error` event.
public struct WorkerStartError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
