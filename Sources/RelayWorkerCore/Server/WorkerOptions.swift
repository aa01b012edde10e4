/// Operator settings of one worker process (from the command line). Everything a client may not
/// decide for itself lives here.
public struct WorkerOptions: Sendable {
    public var host: String = "0.0.0.0"
    public var port: Int = 9000
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
    /// Largest accepted client message (the reference's 50 MiB).
    public var maxMessageBytes = 50 * 1024 * 1024
    /// Grace between SIGTERM and SIGKILL when a child is stopped.
    public var stopGrace: Duration = .seconds(5)
    /// The environment children start from (the worker's own, by default).
    public var baseEnvironment: [String: String]

    public init(baseEnvironment: [String: String]) {
        self.baseEnvironment = baseEnvironment
    }
}
