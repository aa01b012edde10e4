import RelayProtocol

/// Google Gemini CLI in ACP mode: `gemini --acp --output-format stream-json`.
struct GeminiAdapter: Adapter {
    func baseCommand(_ handshake: Handshake) -> [String] {
        var argv = ["gemini", "--acp", "--output-format", "stream-json"]
        if let model = handshake.model, !model.isEmpty { argv += ["--model", model] }
        return argv + handshake.extraArgs
    }

    func makeRuntime(_ context: SessionContext) -> any AgentRuntime { GeminiRuntime(context: context) }
}

extension JSONRPCChild.Wording {
    static let gemini = Self(
        tool: "gemini", notRunning: "Gemini ACP process exited", exited: "Gemini ACP process exited", waitingFor: "Gemini ACP")
}
