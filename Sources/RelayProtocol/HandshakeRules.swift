/// What a client may ask for in a handshake.
///
/// Shared by the worker, which enforces them, and the controller's handshake firewall, which refuses
/// early with the same words, so the two layers can never disagree.
///
/// The reference silently drops unknown env keys and lets through code-injection and redirect
/// variables (`NODE_OPTIONS`, `PATH`, `*_BASE_URL`…). We refuse the handshake instead, so a client learns
/// at once that its setting was not applied; operators widen the list with `--allow-env KEY`.
public enum HandshakeRules {
    static let envExact: Set<String> = ["TERM", "SHELL", "LANG", "LC_ALL"]
    static let envPrefixes = ["CLAUDE_", "CODEX_", "GEMINI_", "GOOGLE_", "ANTHROPIC_", "OPENAI_", "AZURE_", "AWS_", "LAB_"]
    /// Redirects (endpoints, config dirs) and injection hooks, refused even under an allowed prefix.
    static let envDangerousSuffixes = [
        "_BASE_URL", "_API_BASE", "_ENDPOINT", "_HOST", "_URL", "_HOME", "_CONFIG_DIR", "_DIR", "_PROXY", "_CA_CERTS",
        "_HELPER",
    ]
    static let envBlocked: Set<String> = [
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH",
        "PYTHONPATH", "PYTHONSTARTUP", "BASH_ENV", "ENV", "CDPATH", "NODE_OPTIONS", "PATH", "HOME",
    ]

    /// Returns why `key` is refused, or nil when a client may set it.
    public static func envRefusal(for key: String, operatorAllowed: Set<String>) -> String? {
        if operatorAllowed.contains(key) { return nil }
        if envBlocked.contains(key) { return "env key '\(key)' is not allowed" }
        if key.hasPrefix("AI_RELAY_") { return "env key '\(key)' is reserved for the operator" }
        if envDangerousSuffixes.contains(where: { key.hasSuffix($0) }) {
            return "env key '\(key)' could redirect the agent and is not allowed"
        }
        if envExact.contains(key) || envPrefixes.contains(where: { key.hasPrefix($0) }) { return nil }
        return "env key '\(key)' is not on the allow-list"
    }

    /// The reference's `extra_args` characters: alphanumerics and `_ - . = , @ :`.
    public static func isArgCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "="), UInt8(ascii: ","), UInt8(ascii: "@"), UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }

    /// Claude Code / Kimi flags that cannot widen what the agent may do (no permission bypass, no
    /// extra directories or config).
    public static let claudeFlags: Set<String> = ["--max-turns", "--fallback-model", "--disallowedTools", "--disallowed-tools"]

    /// The first argument `allowed` does not permit, or nil. A flag must be listed (by its name before
    /// `=`); a bare value is accepted only right after a listed flag. `allowed == nil` permits all.
    public static func refusedArgument(_ args: [String], allowed: Set<String>?) -> String? {
        guard let allowed else { return nil }
        var previousWasFlag = false
        for arg in args {
            if arg.hasPrefix("-") {
                let name = String(arg.split(separator: "=", maxSplits: 1).first ?? "")
                guard allowed.contains(name) else { return arg }
                previousWasFlag = !arg.contains("=")
            } else {
                guard previousWasFlag else { return arg }
                previousWasFlag = false
            }
        }
        return nil
    }
}
