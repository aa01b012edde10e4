import DockerClient
import Logging
import Synchronization

/// Multi mode: one hardened container per user.
///
/// Docker labels are the state (`lab.managed-by`, `lab.deployment`, `lab.user`, `lab.spec-hash`,
/// `lab.controller-id`, `lab.port`, `lab.created-at`): a restarted controller lists them and adopts what
/// runs, so nothing is kept that the engine cannot give back. Every list, removal and event filter
/// includes this lab's `lab.deployment`, so other labs on the engine are left alone. The container name
/// `<deployment>-<user>` makes a second create for the same user fail with 409, which is resolved by
/// adopting the running container.
public final class DockerBackend: WorkerBackend {
    public let kind = "docker"
    let docker: DockerClient
    let layout: ContainerLayout
    let workspace: Workspace
    let logger: Logger
    /// The spec hash includes the image *id*, learned at adoption time, so a rebuilt tag counts as a change.
    private let imageID = Mutex<String>("")
    /// The engine's CPU count (the CPU limit is capped at it), learned with the image id.
    private let engineCPUs = Mutex<Int?>(nil)
    /// Containers we are stopping ourselves: their `die` is not a death.
    private let stopping = Mutex<Set<String>>([])
    /// Containers whose `oom` event was seen (it precedes `die`).
    private let oomSeen = Mutex<Set<String>>([])

    public static let managedLabel = "lab.managed-by"
    public static let managedValue = "labctrl"

    init(docker: DockerClient, layout: ContainerLayout, workspace: Workspace, logger: Logger) {
        self.docker = docker
        self.layout = layout
        self.workspace = workspace
        self.logger = logger
    }

    /// Builds the backend from the configuration; the engine address comes from `LAB_DOCKER_HOST` or the
    /// Docker CLI variables (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`).
    public static func make(config: LabConfig, controllerEnvironment: [String: String], envFile: [(String, String)], logger: Logger)
        throws(ConfigError) -> DockerBackend
    {
        var env = controllerEnvironment
        if let host = config.dockerHost { env["DOCKER_HOST"] = host }
        let docker: DockerClient
        do {
            docker = try DockerClient.fromEnvironment(env)
        } catch {
            throw ConfigError(variable: config.dockerHost != nil ? "LAB_DOCKER_HOST" : "DOCKER_HOST", value: env["DOCKER_HOST"], expected: error.message)
        }
        var workerEnv: [String: String] = [:]
        for (k, v) in controllerEnvironment where k.hasPrefix("AI_RELAY_") { workerEnv[k] = v }
        for (k, v) in envFile { workerEnv[k] = v }
        workerEnv["HOME"] = config.containerHome
        let layout = ContainerLayout(config: config, environment: workerEnv, workerArguments: LabController.workerArguments(config))
        let workspace = Workspace(root: config.workspaceRoot, owner: (config.containerUID, config.containerGID))
        return DockerBackend(docker: docker.withRequestTimeout(.seconds(30)), layout: layout, workspace: workspace, logger: logger)
    }

    public var currentSpecHash: String { layout.specHash(imageID: imageID.withLock { $0 }) }

    // ---- adoption ------------------------------------------------------------------------

    public func adoptExisting() async throws -> [WorkerHandle] {
        await refreshImageID()
        await ensureIsolatedNetwork()
        await removeLegacyNamesakes()
        let containers = try await docker.listContainers(all: true, filters: ["label": layout.labelFilter()])
        var handles: [WorkerHandle] = []
        var seen = Set<UserID>()
        for c in containers {
            guard let labels = c.labels, let raw = labels[ContainerLayout.userLabel], let user = UserID(raw) else {
                logger.warning("managed container without a valid user label; leaving it alone", metadata: ["id": "\(c.id)"])
                continue
            }
            if c.state != "running" || seen.contains(user) {
                logger.info("removing stopped worker container", metadata: ["user": "\(user)", "id": "\(c.id)", "state": "\(c.state ?? "?")"])
                try? await docker.removeContainer(c.id, force: true)
                continue
            }
            do {
                var handle = try await handle(forContainer: c.id, user: user)
                handle.adopted = true
                handles.append(handle)
                seen.insert(user)
            } catch {
                logger.warning("cannot adopt container; removing it", metadata: ["user": "\(user)", "id": "\(c.id)", "error": "\(error)"])
                try? await docker.removeContainer(c.id, force: true)
            }
        }
        return handles
    }

    /// Containers of a controller from before `lab.deployment` carry no such label; one is removed only
    /// when it holds exactly the name this lab would give that user (it would block the create with a
    /// 409 forever, and cannot be adopted: no worker token). Any other unlabelled one is left alone.
    private func removeLegacyNamesakes() async {
        guard let all = try? await docker.listContainers(all: true, filters: .label(Self.managedLabel, Self.managedValue)) else { return }
        for c in all where c.labels?[Deployment.label] == nil {
            guard let user = c.labels?[ContainerLayout.userLabel].flatMap(UserID.init),
                c.names?.contains("/\(layout.containerName(user))") == true
            else { continue }
            logger.notice("removing a container of an older controller that holds this lab's name", metadata: ["user": "\(user)", "id": "\(c.id)"])
            try? await docker.removeContainer(c.id, force: true)
        }
    }

    public func refreshSpec() async { await refreshImageID() }

    private func refreshImageID() async {
        if engineCPUs.withLock({ $0 == nil }), let n = try? await docker.info().ncpu { engineCPUs.withLock { $0 = n } }
        do {
            let image = try await docker.inspectImage(layout.image)
            let previous = imageID.withLock { old in
                defer { old = image.id }
                return old
            }
            if !previous.isEmpty, previous != image.id {
                logger.info("worker image changed; running workers will be recreated when idle", metadata: ["image": "\(layout.image)"])
            }
        } catch {
            logger.error("worker image not found; containers cannot start until it exists", metadata: ["image": "\(layout.image)", "error": "\(error)"])
        }
    }

    /// A handle from the engine's view of a container: labels give the user, spec hash and port; the
    /// address comes from inspect on `LAB_NETWORK` (or loopback in host-network mode).
    func handle(forContainer id: String, user: UserID) async throws -> WorkerHandle {
        let info = try await docker.inspectContainer(id)
        guard info.state.running else { throw WorkerStartError("container \(info.shortName) is \(info.state.status)") }
        let labels = info.config.labels ?? [:]
        guard let token = WorkerToken.find(in: info.config.env) else {
            throw WorkerStartError("container \(info.shortName) has no worker token (made by an older controller)")
        }
        let address: WorkerAddress
        if layout.hostNetwork {
            guard let port = labels[ContainerLayout.portLabel].flatMap(Int.init) else {
                throw WorkerStartError("container \(info.shortName) has no \(ContainerLayout.portLabel) label")
            }
            address = WorkerAddress(host: "127.0.0.1", port: port, token: token)
        } else {
            guard let ip = info.networkSettings?.networks?[layout.network]?.ipAddress, !ip.isEmpty else {
                throw WorkerStartError("container \(info.shortName) has no address on network \(layout.network)")
            }
            address = WorkerAddress(host: ip, port: layout.containerPort, token: token)
        }
        return WorkerHandle(
            user: user, id: info.id, address: address, specHash: labels[ContainerLayout.specLabel] ?? "",
            createdAt: labels[ContainerLayout.createdLabel].flatMap(Double.init) ?? 0)
    }

    // ---- start / stop ----------------------------------------------------------------------

    public func start(user: UserID, progress: @escaping @Sendable (StartStep) -> Void) async throws -> WorkerHandle {
        progress(.creating)
        if imageID.withLock({ $0.isEmpty }) { await refreshImageID() }
        let hostDir = try workspace.ensure(user)
        let port = layout.hostNetwork ? try FreePort.pick() : layout.containerPort
        let spec = layout.spec(
            user: user, hostWorkspace: hostDir, port: port, specHash: currentSpecHash, createdAt: RelayClock.now(),
            token: WorkerToken.generate(), engineCPUs: engineCPUs.withLock { $0 })
        var id = ""
        for attempt in 1...3 {
            do {
                id = try await docker.createContainer(spec, name: layout.containerName(user)).id
                break
            } catch let error as DockerError where error.isConflict && attempt < 3 {
                // Another replica (or a leftover) holds the name: adopt it once it runs, else replace it.
                logger.debug("name conflict on create", metadata: ["user": "\(user)", "attempt": "\(attempt)"])
                if var adopted = await awaitRunning(layout.containerName(user), user: user) {
                    logger.info("adopted existing container after name conflict", metadata: ["user": "\(user)", "id": "\(adopted.id)"])
                    adopted.adopted = true
                    return adopted
                }
            } catch let error as DockerError where error.isNotFound {
                throw WorkerStartError("the worker image \(layout.image) is not available on the Docker engine")
            }
        }
        progress(.starting)
        do {
            try await docker.startContainer(id)
        } catch {
            try? await docker.removeContainer(id, force: true)
            throw WorkerStartError("the worker container did not start: \(error)")
        }
        do {
            return try await handle(forContainer: id, user: user)
        } catch {
            try? await docker.removeContainer(id, force: true)
            throw error
        }
    }

    /// After a 409 on create: waits (bounded) for the container holding the name to run — another replica
    /// is starting it — and returns its handle. A container that is stopped, or stays merely "created",
    /// is a leftover: it is removed and nil is returned so the caller creates its own.
    func awaitRunning(_ name: String, user: UserID) async -> WorkerHandle? {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        var firstEmpty: ContinuousClock.Instant?
        // The list endpoint (not inspect) is used for the state: it answers for containers in any state.
        let filters: DockerFilters = ["label": layout.labelFilter("\(ContainerLayout.userLabel)=\(user.value)")]
        var lastSeen: String?
        while clock.now < deadline {
            let found: [ContainerSummary]
            do {
                found = try await docker.listContainers(all: true, filters: filters)
            } catch {
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            guard let c = found.first(where: { $0.names?.contains("/\(name)") ?? false }) ?? found.first else {
                // The engine reserves the name before the new container is listed: an empty answer right
                // after a 409 means "still being created"; only a lasting one means it is gone.
                if firstEmpty == nil { firstEmpty = clock.now }
                if clock.now - firstEmpty! > .seconds(2) { return nil }
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            firstEmpty = nil
            lastSeen = c.id
            switch c.state {
            case "running"?:
                if let h = try? await handle(forContainer: c.id, user: user) { return h }
            case "created"?, "restarting"?:
                break
            default:
                logger.info("removing a stopped container that holds the name", metadata: ["user": "\(user)", "state": "\(c.state ?? "?")"])
                try? await docker.removeContainer(c.id, force: true)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        logger.warning("the container holding the name never ran; replacing it", metadata: ["user": "\(user)"])
        // By id, as listed under this deployment's labels: never a container of another lab.
        if let lastSeen { try? await docker.removeContainer(lastSeen, force: true) }
        return nil
    }

    public func stop(_ handle: WorkerHandle, reason: StopReason) async {
        _ = stopping.withLock { $0.insert(handle.id) }
        defer { _ = stopping.withLock { $0.remove(handle.id) } }
        do {
            logger.debug("stopping container", metadata: ["user": "\(handle.user)", "id": "\(handle.id)", "reason": "\(reason.rawValue)"])
            if reason != .dead {
                try await docker.stopContainer(handle.id, timeout: layout.stopTimeout)
            }
            logger.debug("removing container", metadata: ["user": "\(handle.user)", "id": "\(handle.id)"])
            try await docker.removeContainer(handle.id, force: true)
        } catch let error as DockerError where error.isNotFound {
            // already gone
        } catch {
            logger.error("could not remove worker container", metadata: ["user": "\(handle.user)", "id": "\(handle.id)", "error": "\(error)"])
        }
    }

    // ---- events ------------------------------------------------------------------------------

    /// Follows the engine's events until cancelled. A failed or ended stream (the engine restarting) is
    /// subscribed again with back-off (0.5 s doubling to 10 s); once it is back, ``WorkerIncident/reconnected``
    /// lets the hub find the workers that died while their events could not arrive.
    public func watchIncidents(_ report: @escaping @Sendable (WorkerIncident) async -> Void) async throws {
        let filters: DockerFilters = [
            "type": ["container"], "label": layout.labelFilter(), "event": ["die", "oom"],
        ]
        var backoff = Backoff(first: .milliseconds(500), cap: .seconds(10))
        var lost = false
        while true {
            do {
                let events = try await docker.events(filters: filters)
                if lost {
                    logger.notice("engine events resumed; reconciling workers")
                    await report(.reconnected)
                    lost = false
                }
                backoff.reset()
                for try await event in events { await handle(event, report) }
                try Task.checkCancellation()
                logger.warning("engine event stream ended; subscribing again")
            } catch {
                try Task.checkCancellation()
                if !lost { logger.error("engine event stream failed; retrying with back-off", metadata: ["error": "\(error)"]) }
            }
            lost = true
            try await Task.sleep(for: backoff.next())
        }
    }

    private func handle(_ event: DockerEvent, _ report: @Sendable (WorkerIncident) async -> Void) async {
        let id = event.actor.id
        switch event.actionName {
        case "oom":
            _ = oomSeen.withLock { $0.insert(id) }
            guard let user = event.actor.attributes?[ContainerLayout.userLabel].flatMap(UserID.init) else { return }
            await report(.memoryKill(user: user, id: id, limitBytes: layout.memory))
        case "die":
            if stopping.withLock({ $0.contains(id) }) { return }
            guard let user = event.actor.attributes?[ContainerLayout.userLabel].flatMap(UserID.init) else { return }
            let exitCode = event.actor.attributes?["exitCode"].flatMap(Int.init)
            var oom = oomSeen.withLock { $0.remove(id) != nil }
            if !oom, let info = try? await docker.inspectContainer(id) { oom = info.state.oomKilled ?? false }
            let reason: String
            if oom {
                reason = "it ran out of memory (OOM killed\(layout.memory.map { ", limit \($0 / (1024 * 1024)) MiB" } ?? ""))"
            } else if exitCode == 137 {
                reason = "it was killed (exit code 137)"
            } else if let exitCode {
                reason = "it exited with code \(exitCode)"
            } else {
                reason = "its container stopped"
            }
            await report(.died(WorkerDeath(user: user, id: id, reason: reason, oomKilled: oom, exitCode: exitCode)))
        default:
            break
        }
    }

    /// Managed containers that exist and have not exited (created, running, paused, restarting).
    public func aliveWorkerIDs() async throws -> Set<String> {
        let containers = try await docker.listContainers(all: true, filters: ["label": layout.labelFilter()])
        return Set(containers.filter { $0.state != "exited" && $0.state != "dead" }.map(\.id))
    }

    public func isHealthy() async -> Bool {
        do {
            try await docker.ping()
            return true
        } catch {
            return false
        }
    }

    /// Containers are left running: the next controller adopts them.
    public func shutdown() async {}
}
