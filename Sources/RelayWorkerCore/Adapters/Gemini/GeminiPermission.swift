import RelayProtocol

/// The answer to an ACP `session/request_permission`.
///
/// Written in the nested form of the current ACP schema, `{"outcome":{"outcome":"selected",
/// "optionId":…}}` (and `{"outcome":{"outcome":"cancelled"}}` on interrupt): the Gemini CLI reads
/// `output.outcome.outcome` / `output.outcome.optionId`, so the reference's flat
/// `{"outcome":"selected","optionId":…}` does not select anything there.
///
/// The option follows the shared `PermissionVerdict` (fail closed: no answer field denies). Only an
/// answer with no verdict field may select by `optionId`/`option_id` alone, and then only an offered
/// option whose kind (or id) allows; with a verdict, an `optionId` is used only when it agrees with
/// it. Otherwise the verdict picks from the stored request's options (the client need not echo
/// them): `allow_always` for a for-session allow, else `allow_once` / `reject_once`, then the
/// reference's id-token rule, then `proceed_once` / `cancel`.
enum GeminiPermission {
    static let denyTokens = ["cancel", "deny", "reject", "no"]

    typealias Option = (id: String, kind: String)

    static func isDeny(_ option: Option) -> Bool {
        if option.kind.hasPrefix("allow") { return false }
        if option.kind.hasPrefix("reject") { return true }
        return denyTokens.contains { option.id.lowercased().contains($0) }
    }

    static func allows(_ message: ClientMessage) -> Bool { PermissionVerdict(message.object).allows }

    static func optionID(_ message: ClientMessage, options stored: [JSON]) -> String {
        var options = stored
        if options.isEmpty {
            for key in ["updatedInput", "args"] {
                if let list = message[key]?["options"]?.arrayValue, !list.isEmpty {
                    options = list
                    break
                }
            }
        }
        let ids: [Option] = options.compactMap { o in
            guard let id = o["optionId"]?.stringValue, !id.isEmpty else { return nil }
            return (id, o["kind"]?.stringValue ?? "")
        }
        let chosen = (message["optionId"] ?? message["option_id"])?.stringValue
        let named = ids.first { $0.id == chosen }
        let verdict = PermissionVerdict(message.object)
        let allow: Bool
        if PermissionVerdict.isSilent(message.object), let named {
            allow = !isDeny(named)
        } else {
            allow = verdict.allows
        }
        if let named, isDeny(named) != allow { return named.id }
        if verdict == .allowForSession, let always = ids.first(where: { $0.kind == "allow_always" }) { return always.id }
        if let once = ids.first(where: { $0.kind == (allow ? "allow_once" : "reject_once") }) { return once.id }
        if let match = ids.first(where: { isDeny($0) != allow }) { return match.id }
        return allow ? "proceed_once" : "cancel"
    }

    static func selected(_ optionID: String) -> JSON {
        ["outcome": ["outcome": "selected", "optionId": .string(optionID)]]
    }

    static let cancelled: JSON = ["outcome": ["outcome": "cancelled"]]
}
