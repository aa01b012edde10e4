import Logging
import RelayProtocol

/// Codex credentials at runtime start: with `AI_RELAY_CODEX_PREFER_CHATGPT` and a usable
/// `$HOME/.codex/auth.json`, the API-key variables are removed so codex uses the ChatGPT login.
/// Codex refreshes those tokens itself; the worker never does.
enum CodexAuth {
    static func prepare(_ environment: inout [String: String], options: WorkerOptions, logger: Logger) {
        guard AuthFiles.truthy(environment["AI_RELAY_CODEX_PREFER_CHATGPT"]) else { return }
        let path = AuthFiles.home(environment, fallback: options.baseEnvironment) + "/.codex/auth.json"
        guard let tokens = AuthFiles.readObject(path)?["tokens"]?.objectValue,
            tokens["access_token"]?.isTruthy == true, tokens["refresh_token"]?.isTruthy == true
        else { return }
        for key in ["OPENAI_API_KEY", "OPENAI_AUTH_TOKEN"] where environment[key] != nil {
            environment[key] = nil
            logger.info("removed a key from the codex environment to prefer ChatGPT auth", metadata: ["key": "\(key)"])
        }
    }
}
