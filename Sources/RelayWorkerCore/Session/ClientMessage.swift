import RelayProtocol

/// One client frame after the handshake as a JSON object, normalised as the reference does (the
/// session parses it further into a `ClientCommand`).
public struct ClientMessage: Sendable {
    public var object: JSONObject

    public init(_ object: JSONObject) { self.object = object }

    /// Text frames: a JSON object is the message; anything else becomes `{"text": <frame>}`.
    public init(frame text: String) {
        switch Self.read(text) {
        case .success(let message): self = message
        case .failure: object = JSONObject(["text": .string(text)])
        }
    }

    /// Like `init(frame:)`, but a frame that starts as a JSON object (`{`) and does not parse (e.g. an
    /// integer id beyond Int64, a truncated message) is refused with the parse error instead of
    /// becoming a prompt: it was meant as a message, and guessing its meaning is worse.
    public static func read(_ text: String) -> Result<ClientMessage, JSONParseError> {
        do {
            if case .object(let o) = try JSON.parse(text) { return .success(ClientMessage(o)) }
        } catch {
            if text.utf8.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{") {
                return .failure(error)
            }
        }
        return .success(ClientMessage(JSONObject(["text": .string(text)])))
    }

    public var type: String? { object["type"]?.stringValue }
    public var text: JSON? { object["text"] }
    public var content: JSON? { object["content"] }
    public subscript(key: String) -> JSON? { object[key] }

    /// A permission answer's id, which may be a string or an integer (0 included).
    public var requestID: String? {
        guard let key = (object["request_id"] ?? object["id"])?.idKey, !key.isEmpty else { return nil }
        return key
    }
}
