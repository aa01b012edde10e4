import RelayProtocol

/// OpenAI Codex through `codex app-server --listen stdio://`. The model goes into
/// `thread/start`, not the argv; clients may add no flags (a deliberate difference, README).
struct CodexAdapter: Adapter {
    func baseCommand(_ handshake: Handshake) -> [String] {
        ["codex", "app-server", "--listen", "stdio://"] + handshake.extraArgs
    }

    func makeRuntime(_ context: SessionContext) -> any AgentRuntime { CodexRuntime(context: context) }
}

extension JSONRPCChild.Wording {
    static let codex = Self(
        tool: "codex", notRunning: "codex app-server is not running", exited: "codex app-server exited",
        waitingFor: "codex app-server")
}
