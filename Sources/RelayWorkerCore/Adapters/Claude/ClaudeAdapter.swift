import RelayProtocol

/// Claude Code (`claude`, `claude-code`) and Kimi (Claude Code against Moonshot's Anthropic-compatible
/// endpoint).
struct ClaudeAdapter: Adapter {
    enum Flavor: Sendable { case claude, kimi }
    let flavor: Flavor

    static let kimiDefaultModel = "kimi-k2.7-code"

    func baseCommand(_ handshake: Handshake) -> [String] {
        var argv = [
            "claude", "--print", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
            "--permission-prompt-tool", "stdio",
        ]
        let model = handshake.model ?? (flavor == .kimi ? Self.kimiDefaultModel : nil)
        if let model, !model.isEmpty { argv += ["--model", model] }
        return argv + handshake.extraArgs
    }

    var allowedFlags: Set<String>? { HandshakeRules.claudeFlags }

    func prepare(environment: inout [String: String], handshake: Handshake, options: WorkerOptions) {
        guard flavor == .kimi else { return }
        let base = options.baseEnvironment
        environment["ANTHROPIC_BASE_URL"] = base["KIMI_BASE_URL"] ?? "https://api.moonshot.ai/anthropic"
        if let key = base["MOONSHOT_API_KEY"] ?? base["KIMI_API_KEY"] {
            environment["ANTHROPIC_AUTH_TOKEN"] = key
            environment["ANTHROPIC_API_KEY"] = key
        }
    }

    func makeRuntime(_ context: SessionContext) -> any AgentRuntime {
        ClaudeRuntime(context: context)
    }
}
