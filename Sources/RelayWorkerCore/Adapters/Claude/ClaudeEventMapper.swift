import RelayProtocol

/// Turns one Claude Code stream-json stdout line into relay events.
///
/// Pure: the runtime applies the side effects (resume id, totals, turn state) itself.
enum ClaudeEventMapper {
    static func events(forLine line: [UInt8]) -> (events: [RelayEvent], message: JSON?) {
        guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { return ([RelayEvent("stdout", text: "")], nil) }
        guard let value = try? JSON.parse(line), case .object = value else {
            return ([RelayEvent("stdout", text: String(decoding: line, as: UTF8.self))], nil)
        }
        return (events(for: value, raw: .fragment(line)), value)
    }

    static func events(for m: JSON, raw: JSON) -> [RelayEvent] {
        let type = m["type"]?.stringValue ?? ""
        switch type {
        case "assistant":
            if m["isApiErrorMessage"]?.isTruthy == true || m["is_api_error_message"]?.isTruthy == true {
                return [apiError(m, raw: raw)]
            }
            let content = m["message"]?["content"]
            var out = [RelayEvent("assistant_message", content: content ?? .null, raw: raw)]
            for block in content?.arrayValue ?? [] where block["type"]?.stringValue == "tool_use" {
                out.append(
                    RelayEvent(
                        "tool_call", tool: block["name"]?.stringValue, args: block["input"],
                        toolUseID: block["id"]?.stringValue, raw: raw))
            }
            return out
        case "user":
            let content = m["message"]?["content"]
            var out = [RelayEvent("user_message", content: content ?? .null, raw: raw)]
            for block in content?.arrayValue ?? [] where block["type"]?.stringValue == "tool_result" {
                out.append(
                    RelayEvent("tool_result", toolUseID: block["tool_use_id"]?.stringValue, content: block["content"], raw: raw))
            }
            return out
        case "stream_event":
            return [RelayEvent("stream_event", metadata: ["event": m["event"] ?? .null], raw: raw)]
        case "system":
            switch m["subtype"]?.stringValue {
            case "status":
                return [RelayEvent("status", raw: raw, status: m["status"]?.stringValue)]
            case "compact_boundary":
                return [RelayEvent("context_compacted", text: "Conversation compacted", metadata: m["compact_metadata"], raw: raw)]
            default:
                return [RelayEvent("status", raw: raw)]
            }
        case "result":
            return result(m, raw: raw)
        case "tool_progress":
            return [
                RelayEvent(
                    "tool_progress", tool: m["tool_name"]?.stringValue, metadata: m, toolUseID: m["tool_use_id"]?.stringValue,
                    raw: raw)
            ]
        case "control_request":
            let request = m["request"] ?? .null
            if request["subtype"]?.stringValue == "can_use_tool" {
                let text = request["description"]?.stringValue ?? request["decision_reason"]?.stringValue
                return [
                    RelayEvent(
                        "permission_request", text: text, tool: request["tool_name"]?.stringValue, args: request["input"],
                        metadata: [
                            "permission_suggestions": request["permission_suggestions"] ?? .null,
                            "blocked_path": request["blocked_path"] ?? .null, "agent_id": request["agent_id"] ?? .null,
                        ],
                        requestID: m["request_id"], toolUseID: request["tool_use_id"]?.stringValue, raw: raw)
                ]
            }
            return [RelayEvent("status", metadata: ["control_request": request], requestID: m["request_id"], raw: raw)]
        case "control_response":
            return [RelayEvent("control_response", requestID: m["response"]?["request_id"], raw: raw)]
        case "control_cancel_request":
            return [RelayEvent("permission_cancelled", requestID: m["request_id"], raw: raw)]
        default:
            return [RelayEvent("stdout", raw: raw)]
        }
    }

    /// API errors, in both the camelCase form the reference knows and the snake_case form Claude
    /// Code 2.1.x writes.
    static func apiError(_ m: JSON, raw: JSON) -> RelayEvent {
        let status = m["apiErrorStatus"] ?? m["api_error_status"] ?? .null
        let error = m["error"] ?? .null
        let texts = (m["message"]?["content"]?.arrayValue ?? []).compactMap { block -> String? in
            block["type"]?.stringValue == "text" ? block["text"]?.stringValue : nil
        }
        var text = texts.joined(separator: "\n\n").trimmed
        if text.isEmpty { text = error.stringValue ?? "" }
        if text.isEmpty { text = "Claude Code API error" }
        let haystack = (text + " " + (error.stringValue ?? "")).lowercased()
        let type: String
        if status.intValue == 429 || haystack.contains("rate_limit") {
            type = "quota_warning"
        } else if haystack.contains("prompt is too long") || haystack.contains("prompt_too_long")
            || haystack.contains("context_length_exceeded")
        {
            type = "context_warning"
        } else {
            type = "error"
        }
        return RelayEvent(
            type, text: text,
            metadata: ["provider": "claude", "api_error_status": status, "api_error": error, "is_api_error_message": true],
            raw: raw)
    }

    static func result(_ m: JSON, raw: JSON) -> [RelayEvent] {
        let success = m["subtype"]?.stringValue == "success" && m["is_error"]?.isTruthy != true
        var text = m["result"]?.stringValue ?? ""
        if text.isEmpty, let errors = m["errors"]?.arrayValue {
            text = errors.map(\.textValue).joined(separator: ", ")
        }
        if success, text.contains("[ARTIFACT") {
            let (cleaned, artifacts) = Artifacts.extract(text)
            var out = [RelayEvent("response", text: cleaned, raw: raw)]
            for a in artifacts {
                var e = RelayEvent("artifact", text: a.content, metadata: a.lang.isEmpty ? nil : ["lang": .string(a.lang)])
                e.title = a.title
                e.artifactType = a.type
                out.append(e)
            }
            return out
        }
        return [RelayEvent(success ? "response" : "error", text: text, raw: raw)]
    }
}
