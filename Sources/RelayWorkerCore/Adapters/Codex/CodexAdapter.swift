import RelayProtocol

/// OpenAI Codex through `codex app-server --listen stdio://` (spec §4.3). The model goes into
/// `thread/start`, not the argv; clients may add no flags (WORKER_DIFFERENCES 3).
struct CodexAdapter: Adapter {
    func baseCommand(_ handshake: Handshake) -> [String] {
        ["codex", "app-server", "--listen", "stdio://"] + handshake.extraArgs
    }

    func makeRuntime(_ context: SessionContext) -> any AgentRuntime { CodexRuntime(context: context) }
}
