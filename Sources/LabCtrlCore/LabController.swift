import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The whole controller, assembled from a ``LabConfig``: authenticator, backend, hub, HTTP app and the
/// background services. `labctrl` builds one and runs ``services(onRunning:)`` in a `ServiceGroup`.
public struct LabController: Sendable {
    public let config: LabConfig
    public let auth: Authenticator
    public let backend: any WorkerBackend
    public let hub: WorkerHub
    public let metrics: LabMetrics
    public let logger: Logger
    let proxyEnvironment: ProxyEnvironment

    /// Builds the controller. Throws ``ConfigError`` for anything the operator must fix (exit 2).
    public static func make(config: LabConfig, environment: [String: String], logger: Logger) async throws(ConfigError) -> LabController {
        let metrics = LabMetrics()
        if config.tokensFile != nil { metrics.registerTokensReloadErrors() }
        let auth = try await Authenticator.make(config) { failure in
            // Logged and counted once per change of the file; missing/unreadable means no token is accepted.
            metrics.tokensReloadFailed(failure.kind.rawValue)
            logger.error(
                "tokens file reload failed", metadata: ["kind": "\(failure.kind.rawValue)", "error": "\(failure.error)",
                    "effect": "\(failure.kind == .malformed ? "keeping the last good tokens" : "no tokens accepted until it is back")"])
        }
        let envFile = try config.workerEnvFile.map { path throws(ConfigError) in try EnvFile.load(path: path) } ?? []
        let backend: any WorkerBackend
        let workerHome: @Sendable (UserID) -> String
        switch config.mode {
        case .single:
            try requireSharedAccountStatement(config)
            let binary = try resolveWorkerBinary(config)
            let workspace = Workspace(root: config.workspaceRoot, owner: nil)
            backend = ProcessBackend(
                binary: binary, extraArguments: workerArguments(config), environment: processWorkerEnvironment(environment, envFile: envFile),
                workspace: workspace, stopGrace: .seconds(double: config.workerStopGrace), logger: logger)
            workerHome = { workspace.path(for: $0) }
        case .multi:
            backend = try DockerBackend.make(config: config, controllerEnvironment: environment, envFile: envFile, logger: logger)
            let home = config.containerHome
            workerHome = { _ in home }
        }
        let descriptors = DescriptorLimit.raise()
        let maxConnections = descriptors.connectionCap(configured: config.maxConnections, pending: config.maxPendingConnections)
        logger.info(
            "descriptor limit", metadata: ["soft": "\(descriptors.soft)", "hard": "\(descriptors.hard)", "connections_allowed": "\(maxConnections)"])
        if config.maxConnections == 0 || maxConnections < config.maxConnections {
            logger.warning(
                "LAB_MAX_CONNECTIONS is bounded by the open-file limit (two descriptors per proxied connection)",
                metadata: ["configured": "\(config.maxConnections)", "effective": "\(maxConnections)"])
        }
        let hub = WorkerHub(backend: backend, settings: .init(config), metrics: metrics, logger: logger)
        let workspace = Workspace(
            root: config.workspaceRoot, owner: config.mode == .multi ? (config.containerUID, config.containerGID) : nil)
        let proxy = ProxyEnvironment(
            hub: hub, firewall: HandshakeFirewall(config), workspace: workspace, workerHome: workerHome, maxFrameBytes: config.maxFrameBytes,
            maxHandshakeBytes: config.maxHandshakeBytes,
            registry: ConnectionRegistry(maxPerUser: config.maxConnectionsPerUser, maxTotal: maxConnections),
            pingInterval: .seconds(double: config.pingInterval), handshakeTimeout: .seconds(double: config.handshakeTimeout),
            connectTimeout: .seconds(double: config.containerWSTimeout), metrics: metrics, logger: logger)
        return LabController(config: config, auth: auth, backend: backend, hub: hub, metrics: metrics, logger: logger, proxyEnvironment: proxy)
    }

    /// The HTTP + WebSocket application. `onRunning` receives the bound port (useful with `LAB_PORT=0`).
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let ping: AutoPingSetup = config.pingInterval > 0 ? .enabled(timePeriod: .seconds(double: config.pingInterval)) : .disabled
        return Application(
            router: HTTPRoutes.router(controller: self),
            server: .webSocketServer(
                configuration: .init(
                    http1: .init(idleTimeout: .nanoseconds(Int64((config.httpIdleTimeout * 1e9).rounded()))),
                    ws: .init(maxFrameSize: config.maxFrameBytes, autoPing: ping, closeTimeout: .seconds(5))),
                headTimeout: .nanoseconds(Int64((config.httpIdleTimeout * 1e9).rounded())),
                pending: PendingHeads(limit: config.maxPendingConnections) { [metrics] in metrics.connectionRefused("pending") },
                decide: WebSocketUpgrade.decide(controller: self)),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? config.port) },
            logger: logger)
    }

    /// Every long-running piece, in start order; a `ServiceGroup` stops them in reverse: first the hub
    /// (client sockets closed with a reason, subprocess workers ended, containers left for adoption),
    /// then the event watcher and reaper, then the HTTP server.
    public func services(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> [any Service] {
        [
            application(onRunning: onRunning),
            ReaperService(hub: hub, interval: .seconds(double: config.reaperInterval), logger: logger),
            DeathWatcherService(backend: backend, hub: hub, logger: logger),
            RevocationService(
                auth: auth, registry: proxyEnvironment.registry, metrics: metrics, interval: .seconds(double: config.tokensReload), logger: logger),
            HubLifecycleService(hub: hub, logger: logger),
        ]
    }

    /// The URL to print when a token was generated (single mode on loopback).
    public func startURL(port: Int) -> String? {
        guard let g = auth.generated else { return nil }
        let host = config.host.contains(":") ? "[\(config.host)]" : config.host
        return "ws://\(host):\(port)/ws?token=\(g.token)"
    }

    // ---- helpers -------------------------------------------------------------------------

    /// Single mode runs every user's agent as this controller's OS user, so users can read each other's
    /// workspaces: with more than one identity (JWT, or a tokens file naming several users) the operator
    /// must say so with `LAB_SINGLE_SHARED_ACCOUNT=true`.
    static func requireSharedAccountStatement(_ config: LabConfig) throws(ConfigError) {
        guard !config.singleSharedAccount else { return }
        var several = config.jwtSecret != nil || config.jwtPublicKeyFile != nil
        if !several, let path = config.tokensFile, let text = readTextFile(path),
            let entries = try? TokensFile.parse(text)
        {
            several = Set(entries.map(\.user.value)).count > 1
        }
        if several {
            throw ConfigError(
                variable: "LAB_SINGLE_SHARED_ACCOUNT", value: nil,
                expected: "true to run several users in single mode, where all agents share this OS account and can read each other's files (LAB_MODE=multi isolates users)")
        }
    }

    /// Where in the user's workspace the worker keeps its session logs (so they survive the worker).
    static let sessionsFolder = ".lab/sessions"

    /// Options the worker gets from the operator's firewall settings, so both layers agree.
    static func workerArguments(_ config: LabConfig) -> [String] {
        var args: [String] = []
        for key in config.allowedEnv { args += ["--allow-env", key] }
        if config.allowMCPConfig { args.append("--allow-mcp-config") }
        // Clamped to the worker's ranges (30 days, 7 days).
        args += ["--detach-grace", String(Int(min(config.sessionGrace, 2_592_000).rounded()))]
        args += ["--max-turn-secs", String(max(1, Int(min(config.maxTurn, 604_800).rounded())))]
        return args
    }

    /// A subprocess worker's environment: never the controller's own (it holds the JWT secret and admin
    /// token) — only PATH, locale and `AI_RELAY_*` preferences, then the operator's env file.
    static func processWorkerEnvironment(_ controller: [String: String], envFile: [(String, String)]) -> [String: String] {
        var env: [String: String] = ["PATH": controller["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"]
        for key in ["LANG", "LC_ALL", "TZ", "TMPDIR"] { if let v = controller[key] { env[key] = v } }
        for (k, v) in controller where k.hasPrefix("AI_RELAY_") { env[k] = v }
        for (k, v) in envFile { env[k] = v }
        return env
    }

    /// `LAB_WORKER_BINARY`, or `relay-worker` beside this executable; must be executable.
    static func resolveWorkerBinary(_ config: LabConfig) throws(ConfigError) -> String {
        let path: String
        if let configured = config.workerBinary {
            if configured.contains("/") {
                path = configured
            } else {
                guard let found = searchPath(configured) else {
                    throw ConfigError(variable: "LAB_WORKER_BINARY", value: configured, expected: "an executable on PATH or an absolute path")
                }
                path = found
            }
        } else {
            let exe = executablePath() ?? ""
            let dir = exe.split(separator: "/").dropLast().joined(separator: "/")
            path = "/" + dir + "/relay-worker"
        }
        guard access(path, X_OK) == 0 else {
            throw ConfigError(
                variable: "LAB_WORKER_BINARY", value: config.workerBinary ?? path,
                expected: "an executable relay-worker (default: beside labctrl) for single mode")
        }
        return path
    }

    static func searchPath(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
        return nil
    }

    static func executablePath() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension LabController {
    /// Adopts the workers that already run (controller restart); call before serving.
    public func prepare() async {
        warnAboutReadableSecretFiles()
        do {
            let adopted = try await hub.adoptExisting()
            if adopted > 0 { logger.info("adopted running workers", metadata: ["count": "\(adopted)"]) }
        } catch {
            logger.error("could not list existing workers", metadata: ["error": "\(error)"])
        }
    }
}

extension LabController {
    /// Secret files readable by other OS users are an operator mistake worth a warning at every start
    /// (agents of *this* user can read them in single mode whatever the mode bits: README, "Isolation").
    func warnAboutReadableSecretFiles() {
        for (variable, path) in [("LAB_TOKENS_FILE", config.tokensFile), ("LAB_WORKER_ENV_FILE", config.workerEnvFile)] {
            guard let path else { continue }
            var st = stat()
            guard stat(path, &st) == 0 else { continue }
            if st.st_mode & 0o077 != 0 {
                logger.warning(
                    "secret file is readable by other OS users; chmod 600 it",
                    metadata: ["variable": "\(variable)", "mode": "\(String(st.st_mode & 0o777, radix: 8))"])
            }
        }
    }
}
