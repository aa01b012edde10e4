import RelayProtocol

/// The JSON-RPC result written for a client's answer to a codex server request (spec §4.3.6).
///
/// Accepted answer forms, first match wins:
/// 1. `response`: sent verbatim (any request, e.g. `item/tool/call`).
/// 2. Codex style: `decision` (`accept`, `acceptForSession`, `decline`, `cancel`, or the legacy
///    `approved`/`approved_for_session`/`denied`/`abort`), or a boolean `allow` / `approved`.
/// 3. Claude style: `behavior` `allow`/`approve` → accept, anything else → decline.
/// 4. Nothing → decline (fail closed). The reference ignores `behavior`, so a Claude-style "allow"
///    became a decline there (§11.21).
enum CodexApproval {
    enum Verdict: Equatable {
        case accept, acceptForSession, decline, cancel
        /// A decision object or unknown string from the client, passed through.
        case other(JSON)
    }

    static func verdict(_ message: ClientMessage) -> Verdict {
        if let decision = message["decision"], !decision.isNull {
            guard let s = decision.stringValue else { return .other(decision) }
            switch s {
            case "accept", "approved", "approve", "allow": return .accept
            case "acceptForSession", "approved_for_session": return .acceptForSession
            case "decline", "denied", "deny", "reject": return .decline
            case "cancel", "abort": return .cancel
            default: return .other(decision)
            }
        }
        for key in ["allow", "approved"] {
            if let v = message[key], !v.isNull { return v.isTruthy ? .accept : .decline }
        }
        if let behavior = message["behavior"]?.stringValue {
            return ["allow", "approve"].contains(behavior) ? .accept : .decline
        }
        return .decline
    }

    /// The result for `method` (the stored server request's method).
    static func result(for method: String, _ message: ClientMessage) -> JSON {
        if message.object.has("response") { return message["response"] ?? .null }
        let verdict = verdict(message)
        switch method {
        case "item/permissions/requestApproval":
            if let p = message["permissions"], p.isTruthy { return p }
            // Granting nothing for this turn; an explicit `permissions` object grants more.
            return ["permissions": .object(JSONObject()), "scope": "turn"]
        case "execCommandApproval", "applyPatchApproval":
            // The v1 (legacy) review decisions.
            switch verdict {
            case .accept: return ["decision": "approved"]
            case .acceptForSession: return ["decision": "approved_for_session"]
            case .decline: return ["decision": "denied"]
            case .cancel: return ["decision": "abort"]
            case .other(let d): return ["decision": d]
            }
        case "item/fileChange/requestApproval":
            switch verdict {
            case .accept: return ["decision": "accept"]
            case .acceptForSession: return ["decision": "acceptForSession"]
            case .cancel: return ["decision": "cancel"]
            case .decline, .other: return ["decision": "decline"]
            }
        default:
            switch verdict {
            case .accept: return ["decision": "accept"]
            case .acceptForSession: return ["decision": "acceptForSession"]
            case .decline: return ["decision": "decline"]
            case .cancel: return ["decision": "cancel"]
            case .other(let d): return ["decision": d]
            }
        }
    }
}
