import Logging

/// Every setting of the controller, parsed once from the environment (`LabConfig.fromEnvironment`).
///
/// Names and defaults of the first block are fixed by the original controller (spec §1); the rest are
/// ours. Durations are seconds as `Double` so tests can use sub-second timeouts.
public struct LabConfig: Sendable {
    /// `single`: workers are subprocesses of the controller; `multi`: one Docker container per user.
    public enum Mode: String, Sendable, CaseIterable { case single, multi }
    /// How log lines are written to stderr.
    public enum LogFormat: String, Sendable, CaseIterable { case text, json }

    // ---- spec §1 (names and defaults fixed) ----------------------------------------------
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

    // ---- workers -----------------------------------------------------------------------
    /// `KEY=VALUE` lines handed to every worker (provider credentials, base URLs).
    public var workerEnvFile: String?
    /// Single mode: the worker executable; default `relay-worker` beside `labctrl`.
    public var workerBinary: String?
    /// Cap on concurrently existing workers (0 = no cap).
    public var maxWorkers = 100
    public var containerMemoryBytes: Int64?
    public var containerCPUs: Double?
    public var containerPidsLimit: Int64? = 512
    /// Owner given to new workspace folders in multi mode (the uid of `containerUser` in the image).
    public var containerUID: UInt32 = 1000
    public var containerGID: UInt32 = 1000
    /// Seconds between SIGTERM and SIGKILL when a worker is stopped.
    public var workerStopGrace = 5.0
    /// Identifies this controller in container labels (default: host name).
    public var controllerID = "labctrl"
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
