import RelayProtocol

/// Maps one Cortex SSE event to relay events, per mode. Pure: what the answer
/// adds to the conversation history is returned alongside (`text`, `sql`) and kept by the caller.
///
/// Difference from the reference: an analyst `warnings` event is a `status` (`warnings`), not a
/// `context_warning` — it is about the question or semantic model, and must not start a `/compact`
/// request.
enum CortexEventMapper {
    struct Mapped {
        var events: [RelayEvent] = []
        /// Assistant text for the history.
        var text = ""
        /// Analyst SQL for the history: statement delta and its index.
        var sql: (index: Int64, delta: String)?
    }

    static func map(mode: CortexSettings.Mode, name: String, data: String) -> Mapped {
        if data.trimmed == "[DONE]" { return Mapped(events: [RelayEvent("status", status: "done")]) }
        var payload: JSON = ["data": .string(data)]
        if let value = try? JSON.parse(data), case .object = value { payload = value }
        switch mode {
        case .agent: return agent(name: name, payload)
        case .chat: return chat(name: name, payload)
        case .analyst: return analyst(name: name, payload)
        }
    }

    // MARK: agent

    static func agent(name: String, _ p: JSON) -> Mapped {
        let type = p["type"].flatMap { $0.isTruthy ? $0.textValue : nil } ?? name
        var out = Mapped()
        switch type {
        case "response.text.delta":
            let delta = firstText(p["delta"], p["text"])
            out.text = delta
            out.events = [RelayEvent("response", text: delta, raw: p)]
            return out
        case "response.thinking.delta":
            out.events = [RelayEvent("reasoning", text: firstText(p["delta"], p["thinking"]), raw: p)]
            return out
        case "response.tool_use":
            let info = p["tool_use"] ?? .null
            let name = firstText(info["name"], info["type"], fallback: "tool")
            let input = info["input"].truthy ?? .object(JSONObject())
            out.events = [
                RelayEvent(
                    "tool_call", text: formatToolCall(name, input), tool: name, args: input,
                    toolUseID: firstText(info["id"]), raw: p)
            ]
            return out
        case "response.tool_result":
            let info = p["tool_result"] ?? .null
            out.events = [
                RelayEvent(
                    "tool_result", text: toolResultText(info["content"].truthy ?? []),
                    toolUseID: firstText(info["tool_use_id"]), raw: p)
            ]
            return out
        case "response.status":
            out.events = [RelayEvent("status", raw: p, status: firstText(p["status"], fallback: name))]
            return out
        case "response":
            for block in p["output"]?.arrayValue ?? [] where block.objectValue != nil {
                switch block["type"]?.stringValue {
                case "text":
                    let text = firstText(block["text"])
                    if !text.isEmpty { out.events.append(RelayEvent("response", text: text, raw: block)) }
                case "tool_use":
                    let name = firstText(block["name"], fallback: "tool")
                    let input = block["input"].truthy ?? .object(JSONObject())
                    out.events.append(
                        RelayEvent("tool_call", text: formatToolCall(name, input), tool: name, args: input, raw: block))
                default: break
                }
            }
            if let stop = p["stop_reason"], stop.isTruthy {
                out.events.append(RelayEvent("status", raw: p, status: stop.textValue))
            }
            return out
        default:
            break
        }
        if type == "error" || p.objectValue?.has("error") == true {
            let err = p["error"].truthy ?? p
            let text: String
            if err.objectValue != nil {
                text = [err["message"], err["detail"]].lazy.compactMap { $0 }.first { $0.isTruthy }?.textValue
                    ?? err.encodedString()
            } else {
                text = err.textValue
            }
            out.events = [RelayEvent("error", text: text, raw: p)]
            return out
        }
        if type == "content.block.delta" {
            let delta = p["delta"] ?? .null
            switch delta["type"]?.stringValue {
            case "text_delta":
                let text = firstText(delta["text"])
                out.text = text
                out.events = [RelayEvent("response", text: text, raw: p)]
                return out
            case "thinking_delta":
                out.events = [RelayEvent("reasoning", text: firstText(delta["thinking"]), raw: p)]
                return out
            default: break
            }
        }
        switch type {
        case "response.sql", "response.chart", "response.table":
            let label = String(type.dropFirst("response.".count))
            let content = [p["sql"], p["data"]].lazy.compactMap { $0 }.first { $0.isTruthy }?.textValue ?? p.encodedString()
            out.events = [RelayEvent("tool_result", text: "[\(label.uppercased())]\n\(content)", tool: label, raw: p)]
        case "message.start", "message.stop", "content.block.start", "content.block.stop", "message.delta", "ping":
            break
        default:
            out.events = [RelayEvent("stream_event", metadata: ["event": .string(type)], raw: p)]
        }
        return out
    }

    // MARK: chat

    static func chat(name: String, _ p: JSON) -> Mapped {
        var out = Mapped()
        if p.objectValue?.has("error") == true {
            out.events = [RelayEvent("error", text: (p["error"] ?? .null).encodedString(), raw: p)]
            return out
        }
        if let choice = p["choices"]?.arrayValue?.first {
            if let content = choice["delta"]?["content"], content.isTruthy {
                out.text = content.textValue
                out.events = [RelayEvent("response", text: content.textValue, raw: p)]
                return out
            }
            if let finish = choice["finish_reason"], finish.isTruthy {
                out.events = [RelayEvent("status", raw: p, status: finish.textValue)]
                return out
            }
        }
        out.events = [RelayEvent("stream_event", metadata: ["event": .string(name)], raw: p)]
        return out
    }

    // MARK: analyst

    static func analyst(name: String, _ p: JSON) -> Mapped {
        var out = Mapped()
        switch name {
        case "status":
            out.events = [RelayEvent("status", raw: p, status: p["status"]?.stringValue)]
        case "message.content.delta":
            if p["type"]?.stringValue == "sql" {
                let statement = [p["statement_delta"], p["statement"]].lazy.compactMap { $0 }.first { $0.isTruthy }
                out.events = [
                    RelayEvent(
                        "tool_call", text: statement?.textValue, tool: "sql",
                        args: ["statement_delta": statement ?? .null, "index": p["index"] ?? .null], raw: p)
                ]
                out.sql = (p["index"]?.intValue ?? 0, statement?.textValue ?? "")
            } else {
                let text = firstText(p["text_delta"], p["text"])
                out.text = text
                out.events = [RelayEvent("response", text: text, raw: p)]
            }
        case "warnings":
            out.events = [RelayEvent("status", text: p.encodedString(), raw: p, status: "warnings")]
        case "error":
            out.events = [RelayEvent("error", text: p["message"]?.stringValue ?? p.encodedString(), raw: p)]
        case "response_metadata":
            out.events = [RelayEvent("status", metadata: p, raw: p, status: "response_metadata")]
        case "done":
            out.events = [RelayEvent("status", raw: p, status: "done")]
        default:
            out.events = [RelayEvent("stream_event", metadata: ["event": .string(name)], raw: p)]
        }
        return out
    }

    // MARK: helpers

    /// The first truthy value as text (Python's `a or b or default`).
    static func firstText(_ values: JSON?..., fallback: String = "") -> String {
        values.lazy.compactMap { $0 }.first { $0.isTruthy }?.textValue ?? fallback
    }

    /// `name`, or `name` + the input as 2-space-indented JSON (the reference's display form).
    static func formatToolCall(_ name: String, _ input: JSON) -> String {
        guard input.isTruthy else { return name }
        return name + "\n" + AuthFiles.pretty(input)
    }

    static func toolResultText(_ content: JSON) -> String {
        switch content {
        case .string(let s): return s
        case .array(let items):
            return items.map { item in
                if item.objectValue != nil {
                    return [item["text"], item["value"]].lazy.compactMap { $0 }.first { $0.isTruthy }?.textValue
                        ?? item.encodedString()
                }
                return item.textValue
            }.joined(separator: "\n")
        default:
            return content.isTruthy ? content.textValue : ""
        }
    }
}
