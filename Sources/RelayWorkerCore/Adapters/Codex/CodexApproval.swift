import RelayProtocol

/// The JSON-RPC result written for a client's answer to a codex server request.
///
/// Approval requests (`approvalMethods`) are answered from the shared `PermissionVerdict`: only an
/// explicit allow form accepts, everything else declines. A client `response` object for an
/// approval is read with that same verdict, never sent verbatim. Other server requests (e.g.
/// `item/tool/call`) get the client's `response` verbatim.
enum CodexApproval {
    static let approvalMethods: Set<String> = [
        "execCommandApproval", "applyPatchApproval", "item/commandExecution/requestApproval",
        "item/fileChange/requestApproval", "item/permissions/requestApproval",
    ]

    static func verdict(_ message: ClientMessage) -> PermissionVerdict { PermissionVerdict(message.object) }

    /// The answer object a verdict is read from: the message itself, or its `response`/`result` object.
    static func answer(_ message: ClientMessage) -> ClientMessage {
        for key in ["response", "result"] where message.object.has(key) {
            return ClientMessage(message[key]?.objectValue ?? JSONObject())
        }
        return message
    }

    /// The result for `method` (the stored server request's method; `requested`: its params).
    static func result(for method: String, requested: JSON = .null, _ message: ClientMessage) -> JSON {
        guard approvalMethods.contains(method) else {
            if message.object.has("response") { return message["response"] ?? .null }
            if message.object.has("result") { return message["result"] ?? .null }
            return ["decision": "decline"]
        }
        let message = answer(message)
        let verdict = verdict(message)
        switch method {
        case "item/permissions/requestApproval":
            // Nothing unless allowed; when allowed, exactly what codex asked for — never a grant the
            // client writes itself (that could widen file-system or network access past the request).
            switch verdict {
            case .allow:
                return ["permissions": requested["permissions"]?.objectValue.map(JSON.object) ?? .object(JSONObject()), "scope": "turn"]
            case .allowForSession:
                return ["permissions": requested["permissions"]?.objectValue.map(JSON.object) ?? .object(JSONObject()), "scope": "session"]
            case .deny, .cancel:
                return ["permissions": .object(JSONObject()), "scope": "turn"]
            }
        case "execCommandApproval", "applyPatchApproval":
            // The v1 (legacy) review decisions.
            switch verdict {
            case .allow: return ["decision": "approved"]
            case .allowForSession: return ["decision": "approved_for_session"]
            case .deny: return ["decision": "denied"]
            case .cancel: return ["decision": "abort"]
            }
        default:
            switch verdict {
            case .allow: return ["decision": "accept"]
            case .allowForSession: return ["decision": "acceptForSession"]
            case .deny: return ["decision": "decline"]
            case .cancel: return ["decision": "cancel"]
            }
        }
    }
}
