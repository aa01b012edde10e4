import RelayProtocol

/// What a client message asks the agent, read from its `text` and `content` (docs/protocol.md,
/// "Client messages"). Every message may carry one: a tool that does not act on a message's type
/// sends it as a prompt, as ai-relay does.
///
/// The tools read it in slightly different ways (the reference's, which the differential tests
/// hold us to); each reading is here, next to the others, instead of inside its runtime.
public struct Prompt: Sendable, Equatable {
    /// `text` as sent.
    public let text: JSON?
    /// `content` as sent.
    public let content: JSON?
    /// `uuid`, which Claude echoes on the user line.
    public let uuid: String?
    /// The whole message, for the per-turn options only one tool reads (Codex's `model`, `cwd`,
    /// `sandboxPolicy`…, Gemini's `images`).
    public let fields: JSONObject

    init(_ object: JSONObject) {
        text = object["text"]
        content = object["content"]
        uuid = object["uuid"]?.stringValue
        fields = object
    }

    public subscript(key: String) -> JSON? { fields[key] }

    /// `content` unless missing or null, else `text`: what Claude, Cortex and Gemini read.
    public var body: JSON { content.nonNull ?? text.nonNull ?? .null }

    /// Claude (and the relay slash commands): the text blocks joined by newlines, or the value as
    /// text, trimmed; "" when none. An image-only prompt is `[image]`.
    public var trimmedText: String {
        switch body {
        case .null: return ""
        case .array(let blocks):
            let joined = Self.textBlocks(blocks) { $0.stringValue }.joined(separator: "\n").trimmed
            if joined.isEmpty, blocks.contains(where: { $0["type"]?.stringValue == "image" }) { return "[image]" }
            return joined
        case let value:
            return value.textValue.trimmed
        }
    }

    /// Cortex: the non-empty text blocks joined by newlines, or a truthy value as text (untrimmed).
    public var joinedText: String {
        let value = body
        if let blocks = value.arrayValue {
            return Self.textBlocks(blocks) { $0.isTruthy ? $0.textValue : nil }.joined(separator: "\n")
        }
        return value.isTruthy ? value.textValue : ""
    }

    /// Codex: `text` first (when truthy), else `content` — a string, or the text parts of a block
    /// list plus its images (Anthropic-style base64 `image` blocks, `input_image` parts with a URL)
    /// as app-server image inputs.
    public var textAndImages: (text: String, images: [JSON]) {
        if let text = text.truthy { return (text.textValue, []) }
        guard let content = content.truthy else { return ("", []) }
        guard let blocks = content.arrayValue else { return (content.textValue, []) }
        var images: [JSON] = []
        for block in blocks {
            switch block["type"]?.stringValue {
            case "image":
                let source = block["source"] ?? .null
                if let data = source["data"]?.stringValue {
                    let mime = source["media_type"]?.stringValue ?? "image/png"
                    images.append(["type": "image", "url": .string("data:\(mime);base64,\(data)")])
                } else if let url = source["url"]?.stringValue ?? block["url"]?.stringValue {
                    images.append(["type": "image", "url": .string(url)])
                }
            case "input_image":
                if let url = block["image_url"]?.stringValue { images.append(["type": "image", "url": .string(url)]) }
            default:
                break
            }
        }
        return (Self.textBlocks(blocks) { $0.stringValue }.joined(separator: "\n"), images)
    }

    /// Gemini: the body as ACP content blocks (every block kept: unknown ones as their JSON text),
    /// plus the message's `images`; empty when there is nothing to send.
    public var contentBlocks: [JSON] {
        var parts: [JSON]
        switch body {
        case .null: return []
        case .string(let s):
            if s.isEmpty { return [] }
            parts = [Self.acpText(s)]
        case .array(let blocks):
            parts = blocks.map(Self.acpBlock)
        case let value:
            parts = [Self.acpText(value.textValue)]
        }
        for image in fields["images"]?.arrayValue ?? [] where image.objectValue != nil {
            parts.append(
                Self.acpImage(
                    mime: (image["mime_type"] ?? image["mimeType"])?.stringValue,
                    data: (image["data"] ?? image["base64"])?.stringValue))
        }
        return parts
    }

    /// The `text` of each `text`/`input_text` block, as `read` takes it (nil skips the block).
    static func textBlocks(_ blocks: [JSON], _ read: (JSON) -> String?) -> [String] {
        blocks.compactMap { block in
            let type = block["type"]?.stringValue
            guard type == "text" || type == "input_text", let text = block["text"] else { return nil }
            return read(text)
        }
    }

    static func acpText(_ s: String) -> JSON { ["type": "text", "text": .string(s)] }

    static func acpImage(mime: String?, data: String?) -> JSON {
        ["type": "image", "mimeType": .string(mime.flatMap { $0.isEmpty ? nil : $0 } ?? "image/png"),
         "data": .string(data ?? "")]
    }

    static func acpBlock(_ block: JSON) -> JSON {
        guard case .object = block else { return acpText(block.textValue) }
        switch block["type"]?.stringValue {
        case "text":
            return acpText(block["text"]?.stringValue ?? "")
        case "image":
            let source = block["source"] ?? .null
            return acpImage(mime: source["media_type"]?.stringValue, data: source["data"]?.stringValue)
        case "inline_data":
            return acpImage(mime: (block["mime_type"] ?? block["mimeType"])?.stringValue, data: block["data"]?.stringValue)
        default:
            return acpText(block.encodedString())
        }
    }
}

extension String {
    var trimmed: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
