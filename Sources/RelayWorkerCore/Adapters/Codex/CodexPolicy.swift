import RelayProtocol

/// What a client may ask of codex through the handshake and turn parameters.
///
/// The reference forwards all of it. Here, settings that can send the worker's credentials to
/// another endpoint (`config`, `modelProvider`, `raw_request`) need `--allow-codex-config`, and
/// sandboxes that lift the workspace confinement (`danger-full-access`, `dangerFullAccess`,
/// `externalSandbox`, extra `writableRoots`) need `--allow-codex-full-access`. A per-turn `cwd`
/// must stay inside the workspace root.
enum CodexPolicy {
    /// nil when the handshake is acceptable, else the refusal text.
    static func handshakeRefusal(_ raw: JSONObject, options: WorkerOptions) -> String? {
        if !options.allowCodexConfig {
            for key in ["config", "modelProvider"] where raw[key].map({ !$0.isNull }) == true {
                return "Invalid handshake: codex '\(key)' is disabled on this worker"
            }
        }
        if !options.allowCodexFullAccess, let sandbox = raw["sandbox"], widensSandbox(sandbox) {
            return "Invalid handshake: codex sandbox \(sandbox.encodedString()) is not allowed on this worker"
        }
        return nil
    }

    /// True for a sandbox mode or policy that gives the agent more than the workspace.
    static func widensSandbox(_ value: JSON) -> Bool {
        if let mode = value.stringValue {
            return ["danger-full-access", "dangerFullAccess", "externalSandbox", "external-sandbox"].contains(mode)
        }
        if let type = value["type"]?.stringValue, ["dangerFullAccess", "externalSandbox"].contains(type) { return true }
        if let roots = value["writableRoots"]?.arrayValue, !roots.isEmpty { return true }
        return false
    }
}
