import DockerClient

/// What a user container looks like: the worker in `serve` mode as `LAB_CONTAINER_USER`, the
/// user's workspace bind-mounted at `LAB_CONTAINER_HOME`, no published ports, `no-new-privileges`,
/// all capabilities dropped except `NET_BIND_SERVICE`, memory / CPU / pids limits, a read-only root file
/// system with a tmpfs `/tmp` (the CLIs write only to `$HOME`, the workspace, and `/tmp`), named and
/// labelled by its deployment.
///
/// Pure data so the layout and its hash are unit-tested without an engine.
struct ContainerLayout: Sendable {
    static let userLabel = "lab.user"
    static let specLabel = "lab.spec-hash"
    static let controllerLabel = "lab.controller-id"
    static let portLabel = "lab.port"
    static let createdLabel = "lab.created-at"

    var image: String
    var network: String
    var containerPort: Int
    var containerUser: String
    var containerHome: String
    var environment: [String: String]
    var workerArguments: [String]
    var memory: Int64?
    var cpus: Double?
    var pidsLimit: Int64?
    var stopTimeout: Int
    var controllerID: String
    var deployment: String
    var readOnly: Bool
    var tmpBytes: Int64

    init(config: LabConfig, environment: [String: String], workerArguments: [String]) {
        image = config.image
        network = config.network
        containerPort = config.containerPort
        containerUser = config.containerUser
        containerHome = config.containerHome
        self.environment = environment
        self.workerArguments = workerArguments
        memory = config.containerMemoryBytes
        cpus = config.containerCPUs
        pidsLimit = config.containerPidsLimit
        stopTimeout = max(1, Int(config.workerStopGrace.rounded(.up)))
        controllerID = config.controllerID
        deployment = config.deployment
        readOnly = config.containerReadOnly
        tmpBytes = config.containerTmpBytes
    }

    func containerName(_ user: UserID) -> String { user.containerName(deployment: deployment) }

    /// Filters for this deployment's managed containers (`extra`: more `key=value` labels).
    func labelFilter(_ extra: String...) -> [String] {
        ["\(DockerBackend.managedLabel)=\(DockerBackend.managedValue)", "\(Deployment.label)=\(deployment)"] + extra
    }

    var hostNetwork: Bool { network == "host" }

    /// The worker's argv after the `relay-worker` entrypoint.
    func command(port: Int) -> [String] {
        ["serve", "--host", hostNetwork ? "127.0.0.1" : "0.0.0.0", "--port", String(port), "--workspace-root", containerHome, "--state-dir", containerHome + "/" + LabController.sessionsFolder] + workerArguments
    }

    /// Everything that should force a new container when it changes. The per-worker port of host mode
    /// is left out (it differs per container by design).
    func specHash(imageID: String) -> String {
        var lines = [
            "image=\(image)", "image-id=\(imageID)", "network=\(network)", "port=\(hostNetwork ? "auto" : String(containerPort))",
            "user=\(containerUser)", "home=\(containerHome)", "memory=\(memory.map(String.init) ?? "")",
            "cpus=\(cpus.map { String($0) } ?? "")", "pids=\(pidsLimit.map(String.init) ?? "")", "args=\(workerArguments.joined(separator: " "))",
        ]
        // Only when on, so the containers of a controller from before this setting keep their hash.
        if readOnly { lines.append("read-only=tmp:\(tmpBytes)") }
        lines += environment.sorted { $0.key < $1.key }.map { "env:\($0.key)=\($0.value)" }
        return SpecHash.of(lines)
    }

    /// `token` goes into the container's environment only (not into the spec hash or a label).
    func spec(user: UserID, hostWorkspace: String, port: Int, specHash: String, createdAt: Double, token: String, engineCPUs: Int? = nil) -> ContainerSpec {
        let labels: [String: String] = [
            DockerBackend.managedLabel: DockerBackend.managedValue,
            Self.userLabel: user.value,
            Self.specLabel: specHash,
            Self.controllerLabel: controllerID,
            Deployment.label: deployment,
            Self.portLabel: String(port),
            Self.createdLabel: String(Int(createdAt)),
        ]
        let host = HostConfig(
            mounts: [.bind(hostWorkspace, containerHome)],
            networkMode: network,
            memory: memory,
            memorySwap: memory,  // no swap beyond the memory limit
            nanoCpus: effectiveCPUs(engineCPUs: engineCPUs).map { Int64(($0 * 1e9).rounded()) },
            pidsLimit: pidsLimit,
            securityOpt: ["no-new-privileges"],
            capAdd: ["NET_BIND_SERVICE"],
            capDrop: ["ALL"],
            // No docker-init: it would hold the token in a dumpable /proc/1/environ. The worker is PID 1,
            // non-dumpable, and its reaper also reaps orphaned grandchildren.
            initProcess: false,
            readonlyRootfs: readOnly ? true : nil,
            restartPolicy: .no,
            tmpfs: readOnly ? ["/tmp": "rw,nosuid,nodev,mode=1777,size=\(tmpBytes)"] : nil)
        return ContainerSpec(
            image: image,
            cmd: command(port: port),
            entrypoint: ["relay-worker"],
            env: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + ["\(WorkerToken.environmentVariable)=\(token)"],
            labels: labels,
            user: containerUser,
            workingDir: containerHome,
            hostname: hostNetwork ? nil : user.hostName,
            stopTimeout: stopTimeout,
            hostConfig: host)
    }

    /// The engine refuses more CPUs than it has: a default of 2 must not break a 1-CPU laptop.
    func effectiveCPUs(engineCPUs: Int?) -> Double? {
        guard let cpus else { return nil }
        guard let n = engineCPUs, n > 0 else { return cpus }
        return min(cpus, Double(n))
    }
}
