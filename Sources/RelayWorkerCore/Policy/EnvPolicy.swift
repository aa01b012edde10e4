/// Which handshake `env` keys a client may set (spec §1.5, tightened per §11.4).
///
/// The reference silently drops unknown keys and lets through code-injection and redirect variables
/// (`NODE_OPTIONS`, `PATH`, `*_BASE_URL`…). We refuse the whole handshake instead, so a client learns
/// at once that its setting was not applied; operators widen the list with `--allow-env KEY`.
public enum EnvPolicy {
    static let exact: Set<String> = ["TERM", "SHELL", "LANG", "LC_ALL"]
    static let prefixes = ["CLAUDE_", "CODEX_", "GEMINI_", "GOOGLE_", "ANTHROPIC_", "OPENAI_", "AZURE_", "AWS_", "LAB_"]
    /// Redirects (endpoints, config dirs) and injection hooks, refused even under an allowed prefix.
    static let dangerousSuffixes = [
        "_BASE_URL", "_API_BASE", "_ENDPOINT", "_HOST", "_URL", "_HOME", "_CONFIG_DIR", "_DIR", "_PROXY", "_CA_CERTS",
        "_HELPER",
    ]
    static let blocked: Set<String> = [
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH",
        "PYTHONPATH", "PYTHONSTARTUP", "BASH_ENV", "ENV", "CDPATH", "NODE_OPTIONS", "PATH", "HOME",
    ]

    /// Returns why `key` is refused, or nil when it may be set.
    public static func refusal(for key: String, operatorAllowed: Set<String>) -> String? {
        if operatorAllowed.contains(key) { return nil }
        if blocked.contains(key) { return "env key '\(key)' is not allowed" }
        if key.hasPrefix("AI_RELAY_") { return "env key '\(key)' is reserved for the operator" }
        if dangerousSuffixes.contains(where: { key.hasSuffix($0) }) {
            return "env key '\(key)' could redirect the agent and is not allowed"
        }
        if exact.contains(key) || prefixes.contains(where: { key.hasPrefix($0) }) { return nil }
        return "env key '\(key)' is not on the allow-list"
    }
}
