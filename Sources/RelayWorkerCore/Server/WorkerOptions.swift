/// Operator settings of one worker process (from the command line). Everything a client may not
/// decide for itself lives here.
public struct WorkerOptions: Sendable {
    public var host: String = "0.0.0.0"
    public var port: Int = 9000
    /// The token every upgrade and HTTP request must present (`Authorization: Bearer`); nil = none
    /// (only on loopback, or behind an authenticating proxy with `--insecure-no-token`).
    public var accessToken: String?
    /// `Origin` values allowed on a request; a request with any other `Origin` is refused (403).
    public var allowedOrigins: [String] = []
    /// Confinement root for session folders (realpath-checked). `nil` = any existing folder.
    public var workspaceRoot: String?
    /// Handshake `env` keys the operator allows beyond the built-in allow-list.
    public var allowedEnv: Set<String> = []
    public var allowMCPConfig = false
    public var allowClaudeUpdate = false
    /// Extra PTY tools: tool name → executable.
    public var ptyTools: [String: String] = [:]
    /// A send that blocks longer than this disconnects the client (1008), so a stalled reader
    /// cannot pin memory or a child forever.
    public var sendTimeout: Duration = .seconds(30)
    public var handshakeTimeout: Duration = .seconds(10)
    /// Largest accepted handshake (first message): a session config is small; over it, close 1009.
    public var maxHandshakeBytes = 256 * 1024
    /// Largest accepted client message (the reference's 50 MiB).
    public var maxMessageBytes = 50 * 1024 * 1024
    /// How long a session with no client attached lives on (docs/protocol.md §7); nil = for ever,
    /// zero = it ends with its last socket (ai-relay's behaviour, the default).
    public var detachGrace: Duration? = .zero
    /// The grace never ends a session mid-turn, but a turn longer than this no longer holds it.
    public var maxTurn: Duration = .seconds(3600)
    /// Where sessions keep their event logs (nil: in memory only, lost with the process).
    public var stateDir: String?
    /// Grace between SIGTERM and SIGKILL when a child is stopped.
    public var stopGrace: Duration = .seconds(5)
    /// The environment children start from (the worker's own, by default).
    public var baseEnvironment: [String: String]

    // ---- codex (the reference has no RPC timeouts) ----
    /// Bound on every app-server request (initialize, thread/start, turn/start, turn/interrupt…).
    public var codexRPCTimeout: Duration = .seconds(60)
    /// Lets clients pass a free-form `config`/`modelProvider` at thread start and send `raw_request`
    /// (both can point codex at another model endpoint with the worker's key).
    public var allowCodexConfig = false
    /// Lets clients ask for the `danger-full-access` sandbox (thread `sandbox` or turn `sandboxPolicy`).
    public var allowCodexFullAccess = false

    // ---- gemini (the reference's timeouts) ----
    public var geminiRPCTimeout: Duration = .seconds(60)
    public var geminiPromptTimeout: Duration = .seconds(300)

    // ---- cortex: where a client may send a Snowflake token ----
    /// https hosts a handshake `account_url` may name (`*` matches one or more leading labels).
    public var cortexAllowedHosts: [String] = ["*.snowflakecomputing.com"]
    /// Exact origins (`scheme://host:port`) allowed in addition, http included (test servers).
    public var cortexAllowedOrigins: [String] = []
    /// Worker environment variables a handshake `token_env` may name.
    public var cortexTokenEnvs: Set<String> = ["SNOWFLAKE_PAT"]

    // ---- auth helpers: refresh endpoints, configurable so tests stay on loopback ----
    public var claudeOAuthTokenURL = "https://platform.claude.com/v1/oauth/token"
    public var geminiOAuthTokenURL = "https://oauth2.googleapis.com/token"

    public init(baseEnvironment: [String: String]) {
        self.baseEnvironment = baseEnvironment
    }
}
