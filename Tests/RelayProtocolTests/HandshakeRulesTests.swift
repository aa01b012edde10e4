import RelayProtocol
import Testing

/// The handshake rules both worker and controller apply: env keys and extra_args.
@Suite struct HandshakeRulesTests {
    @Test(arguments: ["NODE_OPTIONS", "PATH", "HOME", "LD_PRELOAD", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "AI_RELAY_X", "FOO", "CODEX_HOME"])
    func refusedEnv(_ key: String) {
        #expect(HandshakeRules.envRefusal(for: key, operatorAllowed: []) != nil)
    }

    @Test(arguments: ["ANTHROPIC_MODEL", "CLAUDE_CODE_MAX_TURNS", "LANG", "TERM"])
    func allowedEnv(_ key: String) {
        #expect(HandshakeRules.envRefusal(for: key, operatorAllowed: []) == nil)
    }

    @Test func operatorCanAllowAnyKey() {
        #expect(HandshakeRules.envRefusal(for: "ANTHROPIC_BASE_URL", operatorAllowed: ["ANTHROPIC_BASE_URL"]) == nil)
    }

    @Test func extraArgsAllowList() {
        let allowed: Set<String> = ["--max-turns"]
        #expect(HandshakeRules.refusedArgument(["--max-turns=3"], allowed: allowed) == nil)
        #expect(HandshakeRules.refusedArgument(["--max-turns", "3"], allowed: allowed) == nil)
        #expect(HandshakeRules.refusedArgument(["--dangerously-skip-permissions"], allowed: allowed) == "--dangerously-skip-permissions")
        #expect(HandshakeRules.refusedArgument(["..", "x"], allowed: allowed) == "..")
        #expect(HandshakeRules.refusedArgument(["anything"], allowed: nil) == nil)
    }
}
