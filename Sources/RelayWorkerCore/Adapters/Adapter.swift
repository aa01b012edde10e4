import Logging
import RelayProtocol

/// Everything a runtime needs for one session.
public struct SessionContext: Sendable {
    public let handshake: Handshake
    /// The resolved working folder.
    public let folder: String
    /// The child's environment after policy and adapter adjustments.
    public let environment: [String: String]
    /// argv as reported in `session_start` (before resume/model changes).
    public let command: [String]
    public let options: WorkerOptions
    public let sink: EventSink
    public let logger: Logger
}

/// One kind of agent (the seam new tools plug into): how to build its command line, which client
/// flags it tolerates, and how to make the runtime that drives it.
public protocol Adapter: Sendable {
    /// argv before per-turn changes; `[]` for tools without a child process.
    func baseCommand(_ handshake: Handshake) -> [String]
    /// Flags a client may add through `extra_args`; `nil` = any flag that passes the character check.
    var allowedFlags: Set<String>? { get }
    /// Adjusts the child environment (e.g. Kimi's Moonshot variables).
    func prepare(environment: inout [String: String], handshake: Handshake, options: WorkerOptions)
    func makeRuntime(_ context: SessionContext) -> any AgentRuntime
}

extension Adapter {
    public var allowedFlags: Set<String>? { [] }
    public func prepare(environment: inout [String: String], handshake: Handshake, options: WorkerOptions) {}
}

/// A live agent behind one WebSocket session.
public protocol AgentRuntime: Sendable {
    /// Runs until the agent's stream ends; returns the exit code reported in `session_end`
    /// (`nil` for tools that have none). Cancellation stops the agent.
    func run() async throws -> Int32?
    /// Handles one client command (the session sends the `input_ack` afterwards). An action the
    /// tool does not act on is its `prompt`, as in the reference (docs/protocol.md, "Client messages").
    func handle(_ command: ClientCommand) async
}

/// Maps tool names to adapters.
public struct AdapterRegistry: Sendable {
    var adapters: [String: any Adapter]

    public init(options: WorkerOptions) {
        let claude = ClaudeAdapter(flavor: .claude)
        adapters = ["claude": claude, "claude-code": claude, "kimi": ClaudeAdapter(flavor: .kimi)]
        adapters["codex"] = CodexAdapter()
        adapters["gemini"] = GeminiAdapter()
        adapters["cortex"] = CortexAdapter()
        adapters["generic"] = PTYAdapter(executable: "generic")
        for (name, path) in options.ptyTools { adapters[name.lowercased()] = PTYAdapter(executable: path) }
    }

    public func adapter(for tool: String) -> (any Adapter)? { adapters[tool] }
}
