import Foundation
import RelayProtocol

/// Turns codex app-server messages into relay events. Pure; the runtime keeps the
/// state (turn id, pending server requests).
///
/// Deliberate differences from the reference:
/// - `warning`, `configWarning`, `deprecationNotice`, `guardianWarning` are `status` events (status =
///   the method), not `context_warning`: they say nothing about the context window and must not
///   start a `/compact` turn. A turn `error` whose `codexErrorInfo` is `contextWindowExceeded` is the
///   real context warning.
/// - an `error` with `willRetry: true` is `status` `retrying` (the turn goes on), not `error`.
/// - the real field names: `turn/diff/updated` → `diff`, `item/fileChange/patchUpdated` → a diff built
///   from `changes`, `item/mcpToolCall/progress` → `text` = `message`, `command/exec/outputDelta` →
///   `text` = the decoded `deltaBase64`.
/// - `fileChange` items also carry `file_path` (first changed path) and `diff` (their diffs).
enum CodexEventMapper {
    // MARK: server requests

    /// The relay tool name for a server request.
    static func requestTool(_ method: String, params: JSON) -> String {
        switch method {
        case "item/commandExecution/requestApproval": return "commandExecution"
        case "item/fileChange/requestApproval": return "fileChange"
        case "item/permissions/requestApproval": return "permissions"
        case "item/tool/call": return params["tool"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "dynamicTool"
        case "execCommandApproval": return "execCommand"
        case "applyPatchApproval": return "applyPatch"
        default: return method
        }
    }

    /// A request codex sends to the client (approvals, dynamic tool calls…): one event the client
    /// answers with `permission_response` quoting `request_id` (the id as a string, "0" included).
    static func requestEvent(key: String, method: String, params: JSON, raw: JSON) -> RelayEvent {
        let text: JSON
        if let reason = params["reason"], reason.isTruthy {
            text = reason
        } else if let command = params["command"], command.isTruthy {
            text = command
        } else {
            text = .string(method)
        }
        var event = RelayEvent(
            method == "item/tool/call" ? "tool_call" : "permission_request", tool: requestTool(method, params: params),
            args: params, metadata: ["method": .string(method)], requestID: .string(key),
            toolUseID: params["itemId"]?.stringValue, raw: raw)
        event.text = text
        return event
    }

    // MARK: notifications

    static func notificationEvents(method: String, params: JSON, raw: JSON) -> [RelayEvent] {
        let meta: JSON = ["method": .string(method)]
        func event(_ type: String, text: String? = nil, content: JSON? = nil, status: String? = nil) -> RelayEvent {
            RelayEvent(type, text: text, metadata: meta, content: content, raw: raw, status: status)
        }
        switch method {
        case "turn/started", "turn/completed":
            let turn = params["turn"].truthy ?? .object(JSONObject())
            return [
                RelayEvent(
                    "status", metadata: ["method": .string(method), "turn": turn], raw: raw,
                    status: String(method.dropFirst("turn/".count)))
            ]
        case "thread/started", "thread/status/changed", "thread/tokenUsage/updated":
            return [event("status", content: params, status: method)]
        case "thread/compacted":
            return [event("context_compacted", content: params)]
        case "item/agentMessage/delta":
            return [event("response", text: deltaText(params))]
        case "item/reasoning/textDelta", "item/reasoning/summaryTextDelta", "item/plan/delta":
            return [event("reasoning", text: deltaText(params))]
        case "item/commandExecution/outputDelta", "command/exec/outputDelta":
            var text = deltaText(params)
            if method == "command/exec/outputDelta", let b64 = params["deltaBase64"]?.stringValue,
                let data = Data(base64Encoded: b64)
            {
                text = String(decoding: data, as: UTF8.self)
            }
            var e = event("tool_progress", text: text)
            e.tool = "commandExecution"
            e.toolUseID = (params["itemId"] ?? params["callId"])?.stringValue
            return [e]
        case "item/fileChange/outputDelta", "item/fileChange/patchUpdated", "turn/diff/updated":
            var e = event("file_diff", content: params)
            switch method {
            case "turn/diff/updated": e.diff = params["diff"]?.stringValue
            case "item/fileChange/patchUpdated":
                e.diff = diffText(params["changes"])
                e.filePath = firstPath(params["changes"])
            default: e.diff = params["delta"]?.stringValue
            }
            return [e]
        case "item/mcpToolCall/progress":
            var e = event("tool_progress", text: params["message"]?.stringValue, content: params)
            e.tool = params["tool"]?.stringValue
            e.toolUseID = params["itemId"]?.stringValue
            return [e]
        case "item/started", "item/completed":
            if let e = itemEvent(params["item"] ?? .null, method: method, raw: raw) { return [e] }
            return [event("stream_event", content: params)]
        case "rawResponseItem/completed":
            return rawResponseItemEvents(params["item"] ?? .null, params: params, raw: raw)
        case "warning", "guardianWarning", "configWarning", "deprecationNotice":
            var text = (params["message"] ?? params["summary"])?.stringValue ?? params.encodedString()
            if let details = params["details"]?.stringValue, !details.isEmpty { text += "\n" + details }
            return [event("status", text: text, content: params, status: method)]
        case "error":
            let error = params["error"]
            let text =
                error?["message"]?.stringValue ?? params["message"]?.stringValue
                ?? (error.nonNull ?? params).textValue
            if params["willRetry"]?.boolValue == true { return [event("status", text: text, status: "retrying")] }
            if error?["codexErrorInfo"]?.stringValue == "contextWindowExceeded" { return [event("context_warning", text: text)] }
            return [event("error", text: text)]
        default:
            return [event("stream_event", content: params)]
        }
    }

    static func deltaText(_ params: JSON) -> String {
        guard let delta = params["delta"], !delta.isNull else { return "" }
        return delta.textValue
    }

    /// The changes' diffs as one text: a single change as is, several each under a `*** <path>` line.
    static func diffText(_ changes: JSON?) -> String? {
        let list = (changes?.arrayValue ?? []).compactMap { c -> (String, String)? in
            guard let diff = c["diff"]?.stringValue else { return nil }
            return (c["path"]?.stringValue ?? "", diff)
        }
        if list.isEmpty { return nil }
        if list.count == 1 { return list[0].1 }
        return list.map { "*** \($0.0)\n\($0.1)" }.joined(separator: "\n")
    }

    static func firstPath(_ changes: JSON?) -> String? {
        changes?.arrayValue?.first?["path"]?.stringValue
    }

    // MARK: items

    static func itemEvent(_ item: JSON, method: String, raw: JSON) -> RelayEvent? {
        let itemType = item["type"]?.stringValue
        let phase = method == "item/started" ? "started" : "completed"
        func make(_ type: String) -> RelayEvent {
            var e = RelayEvent(
                type, metadata: ["method": .string(method), "item_type": JSON(itemType)],
                toolUseID: item["id"]?.stringValue, raw: raw,
                status: item["status"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? phase)
            e.text = item["text"].nonNull
            return e
        }
        switch itemType {
        case "agentMessage":
            return make("assistant_message")
        case "reasoning", "plan":
            var e = make("reasoning")
            e.content = item
            return e
        case "commandExecution":
            var e = make(phase == "started" ? "tool_call" : "tool_result")
            e.tool = "commandExecution"
            if phase == "started" {
                e.text = item["command"].nonNull
                e.args = ["command": item["command"] ?? .null, "cwd": item["cwd"] ?? .null]
            } else {
                e.text = item["aggregatedOutput"].nonNull
                e.exitCode = item["exitCode"]?.intValue.map { Int($0) }
                e.content = item
            }
            return e
        case "fileChange":
            var e = make("file_diff")
            e.text = nil
            e.content = item["changes"].truthy ?? item
            e.filePath = firstPath(item["changes"])
            e.diff = diffText(item["changes"])
            return e
        case "mcpToolCall", "dynamicToolCall", "collabAgentToolCall", "webSearch":
            var e = make(phase == "started" ? "tool_call" : "tool_result")
            e.text = nil
            e.tool = item["tool"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? itemType
            if case .object? = item["arguments"] { e.args = item["arguments"] }
            e.content = item
            return e
        case "contextCompaction":
            var e = make("context_compacted")
            e.text = nil
            e.content = item
            return e
        default:
            return nil
        }
    }

    static func rawResponseItemEvents(_ item: JSON, params: JSON, raw: JSON) -> [RelayEvent] {
        let meta: JSON = ["method": "rawResponseItem/completed"]
        switch item["type"]?.stringValue {
        case "message":
            let text = (item["content"]?.arrayValue ?? []).compactMap { part -> String? in
                let t = part["type"]?.stringValue
                return (t == "output_text" || t == "input_text") ? (part["text"]?.stringValue ?? "") : nil
            }.joined()
            let type = item["role"]?.stringValue == "assistant" ? "assistant_message" : "user_message"
            return [RelayEvent(type, text: text, metadata: meta, content: item, raw: raw)]
        case "reasoning":
            let text = (item["summary"]?.arrayValue ?? []).compactMap { part -> String? in
                let t = part["type"]?.stringValue
                return (t == "summary_text" || t == "text") ? (part["text"]?.stringValue ?? "") : nil
            }.joined(separator: " ")
            return [RelayEvent("reasoning", text: text.isEmpty ? nil : text, metadata: meta, content: item, raw: raw)]
        default:
            return [RelayEvent("stream_event", metadata: meta, content: params, raw: raw)]
        }
    }
}
