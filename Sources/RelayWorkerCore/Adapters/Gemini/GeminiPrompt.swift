import RelayProtocol

/// A client message as ACP prompt content blocks (spec §4.4.3).
enum GeminiPrompt {
    /// The prompt parts; empty when the message carries nothing to send.
    static func parts(_ message: ClientMessage) -> [JSON] {
        let content = message.content.nonNull ?? message.text ?? .null
        var parts: [JSON]
        switch content {
        case .null: return []
        case .string(let s):
            if s.isEmpty { return [] }
            parts = [text(s)]
        case .array(let blocks):
            parts = blocks.map(block)
        default:
            parts = [text(content.textValue)]
        }
        for image in message["images"]?.arrayValue ?? [] where image.objectValue != nil {
            parts.append(
                imagePart(
                    mime: (image["mime_type"] ?? image["mimeType"])?.stringValue,
                    data: (image["data"] ?? image["base64"])?.stringValue))
        }
        return parts
    }

    static func text(_ s: String) -> JSON { ["type": "text", "text": .string(s)] }

    static func imagePart(mime: String?, data: String?) -> JSON {
        ["type": "image", "mimeType": .string(mime.flatMap { $0.isEmpty ? nil : $0 } ?? "image/png"),
         "data": .string(data ?? "")]
    }

    static func block(_ block: JSON) -> JSON {
        guard case .object = block else { return text(block.textValue) }
        switch block["type"]?.stringValue {
        case "text":
            return text(block["text"]?.stringValue ?? "")
        case "image":
            let source = block["source"] ?? .null
            return imagePart(mime: source["media_type"]?.stringValue, data: source["data"]?.stringValue)
        case "inline_data":
            return imagePart(mime: (block["mime_type"] ?? block["mimeType"])?.stringValue, data: block["data"]?.stringValue)
        default:
            return text(block.encodedString())
        }
    }
}
