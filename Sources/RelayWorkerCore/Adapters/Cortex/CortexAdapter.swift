import RelayProtocol

/// Snowflake Cortex: no child process; each prompt is an HTTPS request answered with
/// server-sent events. `session_start.metadata.cmd` is `[]`.
struct CortexAdapter: Adapter {
    func baseCommand(_ handshake: Handshake) -> [String] { [] }

    /// No command line, so no flags.
    var allowedFlags: Set<String>? { [] }

    func makeRuntime(_ context: SessionContext) -> any AgentRuntime { CortexRuntime(context: context) }
}
