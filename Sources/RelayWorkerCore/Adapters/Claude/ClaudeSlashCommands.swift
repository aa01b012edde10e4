/// The slash commands the worker answers itself instead of passing them to Claude (the reference's
/// set): a prompt whose whole trimmed text is one of them.
enum ClaudeSlashCommand: Equatable {
    /// `/cost`: the session's cost and tokens.
    case cost
    /// `/status`: model, conversation, turns, context, cost.
    case status
    /// `/new`, `/clear`: a fresh conversation (the next prompt starts a child without `--resume`).
    case newConversation

    init?(_ text: String) {
        switch text {
        case "/cost": self = .cost
        case "/status": self = .status
        case "/new", "/clear": self = .newConversation
        default: return nil
        }
    }

    /// The `source` of the `response` that answers it.
    var source: String {
        switch self {
        case .cost: "cost_summary"
        case .status: "status_summary"
        case .newConversation: "new_conversation"
        }
    }

    static let newConversationText = "Started a fresh conversation. Your earlier chat history is still saved."
}
