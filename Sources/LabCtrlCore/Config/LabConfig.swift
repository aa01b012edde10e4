import Logging

/// Every setting of the controller, parsed once from the environment (`LabConfig.fromEnvironment`).
///
/// Names and defaults of the first block are fixed by the original controller; the rest are
/// ours. Durations are seconds as `Double` so tests can use sub-second timeouts.
public struct LabConfig: Sendable {
    /// `single`: workers are subprocesses of the controller; `multi`: one Docker container per user.
    public enum Mode: String, Sendable, CaseIterable { case single, multi }
    /// How log lines are written to stderr.
    public enum LogFormat: String, Sendable, CaseIterable { case text, json }

    // ---- names and defaults fixed by the original controller ----------------------------
    public var mode: Mode = .single
    public var workspaceRoot = "/var/ohwise-lab-workspaces"
    public var image = "ohwise-lab-ctrl:local"
    /// Docker network of user containers; `host` = host networking with one port per worker (tests).
    public var network = "lab-network"
    public var containerPort = 9000
    public var containerUser = "labuser"
    /// Default `/home/<containerUser>`.
    public var containerHome = "/home/labuser"
    /// The original slept this long after start. We probe instead; after this many seconds without an
    /// answer the waiting client gets `lab.waiting` progress events (repeated at this interval).
    public var containerStartupDelay = 1.5
    /// Bound on worker readiness (probe) and on the WebSocket connect to the worker.
    public var containerWSTimeout = 15.0
    public var idleTimeout = 1800.0
    /// How long a worker keeps a session no client is attached to (docs/protocol.md §7); 0 = it ends
    /// with its last socket.
    public var sessionGrace = 3600.0

    // ---- listener ----------------------------------------------------------------------
    public var host = "127.0.0.1"
    public var port = 8080

    // ---- identity ----------------------------------------------------------------------
    public var jwtSecret: String?
    public var jwtPublicKeyFile: String?
    public var jwtIssuer: String?
    public var jwtAudience: String?
    /// Lines `<user_id> <token>`.
    public var tokensFile: String?
    public var adminToken: String?
    /// User id of the generated token (single mode on loopback with no auth configured).
    public var localUser = "local"
    /// Single mode with several identities: the operator states that these users share one OS account
    /// (their agents can read each other's workspaces); without it such a configuration does not start.
    public var singleSharedAccount = false

    // ---- workers -----------------------------------------------------------------------
    /// `KEY=VALUE` lines handed to every worker (provider credentials, base URLs).
    public var workerEnvFile: String?
    /// Single mode: the worker executable; default `relay-worker` beside `labctrl`.
    public var workerBinary: String?
    /// Cap on concurrently existing workers (0 = no cap).
    public var maxWorkers = 100
    /// Per-container limits; `nil` = none (`LAB_CONTAINER_MEMORY=0`, `LAB_CONTAINER_CPUS=0`).
    public var containerMemoryBytes: Int64? = 2 << 30
    public var containerCPUs: Double? = 2
    /// Read-only root file system with a tmpfs `/tmp` of `containerTmpBytes` (counted in the memory limit).
    public var containerReadOnly = true
    public var containerTmpBytes: Int64 = 512 << 20
    public var containerPidsLimit: Int64? = 512
    /// Owner given to new workspace folders in multi mode (the uid of `containerUser` in the image).
    public var containerUID: UInt32 = 1000
    public var containerGID: UInt32 = 1000
    /// Seconds between SIGTERM and SIGKILL when a worker is stopped.
    public var workerStopGrace = 5.0
    /// Identifies this controller in container labels (default: host name).
    public var controllerID = "labctrl"
    /// `lab.deployment` label and container-name prefix: this lab lists, adopts and removes only its
    /// own containers on a shared engine. `[a-z0-9-]`, at most 20 characters.
    public var deployment = "labctrl"
    /// Docker engine address; default `DOCKER_HOST`, then the local socket.
    public var dockerHost: String?

    // ---- reaper ------------------------------------------------------------------------
    public var reaperInterval = 30.0
    /// How long before reaping a worker with open connections the `lab.idle_warning` is sent.
    public var idleWarning = 60.0
    /// Hard cap on a turn or pending permission: past it, a busy worker counts as idle (stuck).
    public var maxTurn = 7200.0

    // ---- handshake firewall ------------------------------------------------------------
    public var allowedTools = ["claude", "claude-code", "codex", "gemini", "kimi"]
    /// Extra handshake `env` keys allowed through (also passed to the worker as `--allow-env`).
    public var allowedEnv: [String] = []
    public var allowMCPConfig = false
    /// Cortex `token` / `token_env` / `account_url` in handshakes.
    public var allowCortexCredentials = false

    // ---- proxy -------------------------------------------------------------------------
    /// Largest WebSocket frame accepted from either side (the reference accepts 50 MiB messages).
    public var maxFrameBytes = 52_428_800
    /// WebSocket ping period toward both sides (0 disables).
    public var pingInterval = 20.0
    /// Time a client has to send its first frame.
    public var handshakeTimeout = 10.0
    /// Largest first client message (the handshake); over it: `error` event and close 1009, unparsed.
    public var maxHandshakeBytes = 262_144
    /// Caps on open client WebSockets, per user and in all (0 = no cap); over them the upgrade gets HTTP 429.
    public var maxConnectionsPerUser = 32
    public var maxConnections = 4096
    /// Seconds a new HTTP connection may take to send a complete request head (slowloris bound).
    public var httpIdleTimeout = 30.0
    /// Connections without a complete request head yet (0 = no cap); past it new ones are closed at once.
    public var maxPendingConnections = 256
    /// `Origin`s besides the controller's own that may open `/ws` (e.g. `https://lab.example.com`).
    public var allowedOrigins: [String] = []
    /// Period of the tokens-file reload and of the credential re-check of open sockets (revocation).
    public var tokensReload = 10.0

    // ---- operations --------------------------------------------------------------------
    public var logFormat: LogFormat = .text
    public var logLevel: Logger.Level = .info
    /// Bound on the graceful shutdown after SIGTERM.
    public var shutdownGrace = 10.0

    public init() {}

    /// True when `host` is a loopback address (or `localhost`).
    public var listensOnLoopback: Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }

    /// Whether any user-facing authentication is configured.
    public var hasConfiguredAuth: Bool {
        jwtSecret != nil || jwtPublicKeyFile != nil || tokensFile != nil
    }

    /// Host-network mode: containers share the controller's network namespace and each worker gets its
    /// own port (tests, single-host setups without a Docker network).
    public var usesHostNetwork: Bool { network == "host" }
}
