import RelayProtocol

/// One client frame after the handshake, normalised as the reference does (spec §3.1).
public struct ClientMessage: Sendable {
    public var object: JSONObject

    public init(_ object: JSONObject) { self.object = object }

    /// Text frames: a JSON object is the message; anything else becomes `{"text": <frame>}`.
    public init(frame text: String) {
        if case .object(let o)? = try? JSON.parse(text) {
            object = o
        } else {
            object = JSONObject(["text": .string(text)])
        }
    }

    public var type: String? { object["type"]?.stringValue }
    public var text: JSON? { object["text"] }
    public var content: JSON? { object["content"] }
    public subscript(key: String) -> JSON? { object[key] }

    /// Dropped without an ack: no text, no type, no content.
    public var isEmpty: Bool {
        !(text?.isTruthy ?? false) && !object.has("type") && !object.has("content")
    }

    static let unacked: Set<String> = [
        "ping", "pong", "interrupt", "set_model", "set_permission_mode", "permission_response",
        "control_request", "control_response", "claude_update",
    ]

    /// The `input_ack` this message earns (spec §3.3), or nil.
    public var ack: RelayEvent? {
        if let type, ClientMessage.unacked.contains(type) { return nil }
        var event = RelayEvent("input_ack")
        if let text, text.isTruthy {
            event.text = text
        } else if let t = object["type"], !t.isNull {
            event.text = t
        }
        return event
    }

    /// The prompt text the way the Claude adapter extracts it (spec §4.1.2); "" when none.
    public var promptText: String {
        let value = content.nonNull ?? text.nonNull ?? .null
        switch value {
        case .null: return ""
        case .array(let blocks):
            let parts = blocks.compactMap { block -> String? in
                let t = block["type"]?.stringValue
                return (t == "text" || t == "input_text") ? block["text"]?.stringValue : nil
            }
            let joined = parts.joined(separator: "\n").trimmed
            if joined.isEmpty, blocks.contains(where: { $0["type"]?.stringValue == "image" }) { return "[image]" }
            return joined
        default:
            return value.textValue.trimmed
        }
    }

    /// A permission answer's id, which may be a string or an integer (0 included).
    public var requestID: String? {
        guard let key = (object["request_id"] ?? object["id"])?.idKey, !key.isEmpty else { return nil }
        return key
    }
}

extension String {
    var trimmed: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
