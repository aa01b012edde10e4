import RelayProtocol

/// Maps ACP `session/update` payloads to relay events. Every event carries
/// `raw` = the update object.
///
/// Differences from the reference: `tool_call` events read the fields ACP really has
/// (`tool` = `toolName` or else `kind`, `args` = `args` or else `rawInput`); a `tool_call_update`
/// whose status is `completed`/`failed` is the tool's `tool_result` (ACP has no separate result
/// update); and a `content`/`delta` that is not an object is ignored instead of killing the reader.
enum GeminiEventMapper {
    static func events(forUpdate update: JSON) -> [RelayEvent] {
        var events: [RelayEvent] = []
        let kind = update["sessionUpdate"]?.stringValue
        let contentText = update["content"]?["text"]?.stringValue ?? ""
        switch kind {
        case "agent_message_chunk":
            if !contentText.isEmpty { events.append(RelayEvent("assistant_message", text: contentText, raw: update)) }
        case "agent_thought_chunk":
            if !contentText.isEmpty { events.append(RelayEvent("reasoning", text: contentText, raw: update)) }
        case "tool_call", "tool_call_update":
            let status = update["status"]?.stringValue
            if kind == "tool_call_update", status == "completed" || status == "failed" {
                events.append(
                    RelayEvent(
                        "tool_result", text: update["title"]?.stringValue, toolUseID: update["toolCallId"]?.stringValue,
                        content: update["content"].nonNull, raw: update, status: status))
            } else {
                let tool = update["toolName"]?.stringValue ?? update["kind"]?.stringValue
                events.append(
                    RelayEvent(
                        "tool_call", text: update["title"]?.stringValue ?? update["toolName"]?.stringValue, tool: tool,
                        args: (update["args"] ?? update["rawInput"]).nonNull,
                        toolUseID: update["toolCallId"]?.stringValue, raw: update))
            }
        case "tool_result":
            events.append(
                RelayEvent(
                    "tool_result", toolUseID: update["toolCallId"]?.stringValue,
                    content: update["content"].nonNull, raw: update))
        case "agent_response":
            events.append(RelayEvent("response", text: contentText, raw: update))
        case "agent_error":
            events.append(RelayEvent("error", text: update["message"]?.stringValue, raw: update))
        case "status":
            events.append(
                RelayEvent("status", text: update["message"]?.stringValue, raw: update, status: update["status"]?.stringValue))
        default:
            break
        }
        if let delta = update["delta"], case .object = delta {
            switch delta["type"]?.stringValue {
            case "message":
                var text = ""
                if let s = delta["content"]?.stringValue {
                    text = s
                } else if let blocks = delta["content"]?.arrayValue {
                    text = blocks.compactMap { $0["type"]?.stringValue == "text" ? ($0["text"]?.stringValue ?? "") : nil }
                        .joined()
                }
                if !text.isEmpty { events.append(RelayEvent("assistant_message", text: text, raw: update)) }
            case "tool_call":
                events.append(
                    RelayEvent(
                        "tool_call", tool: delta["name"]?.stringValue, args: delta["args"].nonNull,
                        toolUseID: delta["id"]?.stringValue, raw: update))
            default:
                break
            }
        }
        if events.isEmpty { events.append(RelayEvent("stream_event", raw: update)) }
        return events
    }

    /// `session/request_permission` → `permission_request` with the JSON-RPC id as sent.
    static func permissionEvent(id: JSON, params: JSON, raw: JSON) -> RelayEvent {
        let toolCall = params["toolCall"].object ?? .object(JSONObject())
        let title = toolCall["title"]?.stringValue
        return RelayEvent(
            "permission_request", text: title, tool: title ?? toolCall["toolCallId"]?.stringValue,
            args: ["options": params["options"].nonNull ?? [], "toolCall": toolCall],
            requestID: id, raw: raw)
    }
}
