import RelayProtocol

/// The answer to an ACP `session/request_permission` (spec §4.4.5).
///
/// Written in the nested form of the current ACP schema, `{"outcome":{"outcome":"selected",
/// "optionId":…}}` (and `{"outcome":{"outcome":"cancelled"}}` on interrupt): the Gemini CLI reads
/// `output.outcome.outcome` / `output.outcome.optionId`, so the reference's flat
/// `{"outcome":"selected","optionId":…}` does not select anything there (§11.22).
///
/// The option: the client's `optionId`/`option_id` if given; otherwise allow or deny (Claude-style
/// `behavior`, default allow as in the reference, or Codex-style `decision`/`allow`/`approved`) picks
/// from the options of the stored request (the client need not echo them) — preferring the
/// one-time kinds `allow_once`/`reject_once` (the reference takes the first non-deny option, which
/// is "allow always" in Gemini's list), then the reference's id-token rule, then `proceed_once` /
/// `cancel`.
enum GeminiPermission {
    static let denyTokens = ["cancel", "deny", "reject", "no"]

    static func allows(_ message: ClientMessage) -> Bool {
        if let decision = message["decision"]?.stringValue {
            return ["accept", "acceptForSession", "approved", "approved_for_session", "allow", "approve"].contains(decision)
        }
        for key in ["allow", "approved"] {
            if let v = message[key], !v.isNull { return v.isTruthy }
        }
        let behavior = message["behavior"]?.stringValue ?? "allow"
        return behavior == "allow" || behavior == "approve"
    }

    static func optionID(_ message: ClientMessage, options stored: [JSON]) -> String {
        if let id = (message["optionId"] ?? message["option_id"])?.stringValue, !id.isEmpty { return id }
        var options = stored
        if options.isEmpty {
            for key in ["updatedInput", "args"] {
                if let list = message[key]?["options"]?.arrayValue, !list.isEmpty {
                    options = list
                    break
                }
            }
        }
        let allow = allows(message)
        let ids: [(id: String, kind: String)] = options.compactMap { o in
            guard let id = o["optionId"]?.stringValue, !id.isEmpty else { return nil }
            return (id, o["kind"]?.stringValue ?? "")
        }
        if let once = ids.first(where: { $0.kind == (allow ? "allow_once" : "reject_once") }) { return once.id }
        let isDeny = { (id: String) in denyTokens.contains { id.lowercased().contains($0) } }
        if let match = ids.first(where: { isDeny($0.id) != allow }) { return match.id }
        return allow ? "proceed_once" : "cancel"
    }

    static func selected(_ optionID: String) -> JSON {
        ["outcome": ["outcome": "selected", "optionId": .string(optionID)]]
    }

    static let cancelled: JSON = ["outcome": ["outcome": "cancelled"]]
}
