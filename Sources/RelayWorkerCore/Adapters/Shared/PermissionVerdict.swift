import RelayProtocol

/// The one reading of a client's answer to a permission request, shared by every adapter.
///
/// Fail closed: only an explicit allow form allows. The answer fields are `behavior` and
/// `decision` (strings) and `allow` and `approved` (booleans); a field set to `null` counts as
/// absent. Every present field must allow, otherwise the answer denies: no field at all, an
/// unknown word (`behavior:"maybe"`), a wrong type (`approved:"yes"`, `allow:1`) and conflicting
/// fields (`behavior:"allow"` with `approved:false`) all deny.
///
/// Allow words: accept, accepted, approve, approved, allow, allowed. For-session words (the adapter
/// grants the tool for the rest of the session where its CLI has that, else once):
/// acceptForSession, approved_for_session, allow_always, allowAlways, always_allow. `cancel`/`abort`
/// deny and, for Codex, also stop the turn.
public enum PermissionVerdict: Equatable, Sendable {
    case allow
    case allowForSession
    case deny
    case cancel

    public var allows: Bool { self == .allow || self == .allowForSession }

    static let allowWords: Set<String> = ["accept", "accepted", "approve", "approved", "allow", "allowed"]
    static let sessionWords: Set<String> = [
        "acceptForSession", "approved_for_session", "allow_always", "allowAlways", "always_allow",
    ]
    static let cancelWords: Set<String> = ["cancel", "abort"]

    /// The answer fields this parser reads.
    public static let fields = ["behavior", "decision", "allow", "approved"]

    public init(_ answer: JSONObject) {
        var readings: [PermissionVerdict] = []
        for key in ["behavior", "decision"] {
            guard let value = answer[key], !value.isNull else { continue }
            readings.append(Self.word(value.stringValue))
        }
        for key in ["allow", "approved"] {
            guard let value = answer[key], !value.isNull else { continue }
            readings.append(value.boolValue == true ? .allow : .deny)
        }
        self = Self.combine(readings)
    }

    /// True when the answer carries none of the verdict fields (only then may an adapter read a
    /// tool-specific selection such as Gemini's `optionId`).
    public static func isSilent(_ answer: JSONObject) -> Bool {
        fields.allSatisfy { answer[$0]?.isNull ?? true }
    }

    static func word(_ s: String?) -> PermissionVerdict {
        guard let s else { return .deny }
        if allowWords.contains(s) { return .allow }
        if sessionWords.contains(s) { return .allowForSession }
        if cancelWords.contains(s) { return .cancel }
        return .deny
    }

    /// Nothing → deny; only cancel readings → cancel; any other non-allow reading → deny; all
    /// allowing → for-session if any asked for it.
    static func combine(_ readings: [PermissionVerdict]) -> PermissionVerdict {
        guard !readings.isEmpty else { return .deny }
        if readings.allSatisfy({ $0 == .cancel }) { return .cancel }
        if !readings.allSatisfy(\.allows) { return .deny }
        return readings.contains(.allowForSession) ? .allowForSession : .allow
    }
}
