import RelayProtocol

/// One client text frame after the handshake, parsed once by the session and handed to the runtime
/// (docs/protocol.md, "Client messages").
public struct ClientCommand: Sendable {
    /// What the message asks for, by its `type`.
    public enum Action: Sendable {
        /// No type, `user_message`, or a type nothing acts on.
        case prompt
        case interrupt
        case permissionAnswer(PermissionAnswer)
        /// `model` as sent: each tool checks it its own way.
        case setModel(JSON?)
        /// `set_permission_mode` or `set_approval_policy` (`approvalPolicy: true`, which only Codex
        /// reads; the others take that message as a prompt).
        case setPermissionMode(PermissionMode, approvalPolicy: Bool)
        case claudeUpdate
        /// `raw_request`: `method` when a non-empty string; `params` as sent (null when missing).
        case rawRequest(method: String?, params: JSON)
        /// `control_response`: the client's own answer to a pending agent request (Codex).
        case controlResponse(id: String?, ClientMessage)
        /// `control_request`, `ping`, `pong`: never acked.
        case passive(String)
    }

    /// A permission-mode change as sent; Claude reads `mode` (else `permission_mode`), Codex the
    /// first truthy of `mode`, `approvalPolicy`, `approval_policy`.
    public struct PermissionMode: Sendable {
        public let fields: ClientMessage

        /// Claude's reading: `mode`, else `permission_mode`, as a string; "" when none.
        public var mode: String { (fields["mode"] ?? fields["permission_mode"])?.stringValue ?? "" }

        /// Codex's reading: the first truthy of `mode`, `approvalPolicy`, `approval_policy`.
        public var approvalPolicy: JSON? {
            [fields["mode"], fields["approvalPolicy"], fields["approval_policy"]].lazy.compactMap { $0 }.first { $0.isTruthy }
        }
    }

    public let action: Action
    /// The prompt the message carries (possibly empty). A runtime that does not act on `action`
    /// sends this instead, as the reference's adapters do.
    public let prompt: Prompt
    let acked: Ack

    /// The `input_ack` a message earns: none (control messages), or one echoing its text or type.
    enum Ack: Sendable {
        case none
        case echo(JSON?)
    }

    /// A message the session refuses with an `error` event (the connection stays open).
    public struct Invalid: Error, Equatable, Sendable {
        public let message: String
    }

    static let unacked: Set<String> = [
        "ping", "pong", "interrupt", "set_model", "set_permission_mode", "permission_response",
        "control_request", "control_response", "claude_update",
    ]

    /// Parses one text frame: a JSON object is the message, anything else the text of a prompt.
    /// `nil`: a message with nothing in it (no text, type or content), dropped without an ack.
    public static func parse(_ text: String) -> Result<ClientCommand?, Invalid> {
        switch ClientMessage.read(text) {
        case .failure(let error): return .failure(Invalid(message: "Invalid JSON message: \(error)"))
        case .success(let message):
            do { return .success(try ClientCommand(message)) } catch { return .failure(error) }
        }
    }

    /// The command for a normalised message; nil when it is empty. The only refusal is a
    /// permission answer without a usable id; other odd fields are read by each tool as the
    /// reference does.
    init?(_ message: ClientMessage) throws(Invalid) {
        let object = message.object
        let text = object["text"]
        guard text?.isTruthy ?? false || object.has("type") || object.has("content") else { return nil }
        prompt = Prompt(object)
        let type = message.type
        if let type, Self.unacked.contains(type) {
            acked = .none
        } else if let text, text.isTruthy {
            acked = .echo(text)
        } else if let t = object["type"], !t.isNull {
            acked = .echo(t)
        } else {
            acked = .echo(JSON?.none)
        }
        switch type {
        case "interrupt": action = .interrupt
        case "permission_response":
            guard let answer = PermissionAnswer(message) else {
                throw Invalid(message: "permission_response needs a 'request_id': a string or an integer")
            }
            action = .permissionAnswer(answer)
        case "set_model": action = .setModel(object["model"])
        case "set_permission_mode": action = .setPermissionMode(PermissionMode(fields: message), approvalPolicy: false)
        case "set_approval_policy": action = .setPermissionMode(PermissionMode(fields: message), approvalPolicy: true)
        case "claude_update": action = .claudeUpdate
        case "raw_request":
            let method = object["method"]?.stringValue
            action = .rawRequest(method: method?.isEmpty == false ? method : nil, params: object["params"] ?? .null)
        case "control_response": action = .controlResponse(id: message.requestID, message)
        case "control_request", "ping", "pong": action = .passive(type ?? "")
        default: action = .prompt
        }
    }

    /// The `input_ack` this message earns, or nil (made when sent, so its `ts` follows the runtime's events).
    public var ack: RelayEvent? {
        guard case .echo(let text) = acked else { return nil }
        var event = RelayEvent("input_ack")
        event.text = text
        return event
    }
}

/// An answer to a permission request: its id (a string or a whole number, 0 included) and the
/// shared verdict; `fields` keeps the tool-specific parts (`updatedInput`, `optionId`, `response`…).
public struct PermissionAnswer: Sendable {
    public let id: String
    public let verdict: PermissionVerdict
    public let fields: ClientMessage

    /// nil when the id is missing or not usable.
    init?(_ message: ClientMessage) {
        guard let id = message.requestID else { return nil }
        self.id = id
        self.verdict = PermissionVerdict(message.object)
        self.fields = message
    }
}
