import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// Gemini ACP mapping, permission answers and prompt parts.
@Suite struct GeminiAdapterTests {
    func parse(_ s: String) -> JSON { try! JSON.parse(s) }
    func message(_ s: String) -> ClientMessage { ClientMessage(frame: s) }

    let geminiOptions: [JSON] = [
        ["optionId": "proceed_always", "name": "Allow always", "kind": "allow_always"],
        ["optionId": "proceed_once", "name": "Allow", "kind": "allow_once"],
        ["optionId": "cancel", "name": "Reject", "kind": "reject_once"],
    ]

    @Test func updates() {
        let chunk = GeminiEventMapper.events(forUpdate: parse(#"{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hi"}}"#))
        #expect(chunk.map(\.type) == ["assistant_message"] && chunk[0].text == "hi")
        let empty = GeminiEventMapper.events(forUpdate: parse(#"{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":""}}"#))
        #expect(empty.map(\.type) == ["stream_event"])
        let call = GeminiEventMapper.events(forUpdate: parse(#"{"sessionUpdate":"tool_call","toolCallId":"t1","title":"ReadFile a","kind":"read","rawInput":{"path":"a"}}"#))
        #expect(call[0].type == "tool_call" && call[0].tool == "read" && call[0].args == ["path": "a"] && call[0].text == "ReadFile a")
        let done = GeminiEventMapper.events(forUpdate: parse(#"{"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"completed","content":[]}"#))
        #expect(done[0].type == "tool_result" && done[0].status == "completed" && done[0].toolUseID == "t1")
        let running = GeminiEventMapper.events(forUpdate: parse(#"{"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"in_progress"}"#))
        #expect(running[0].type == "tool_call")
        // Not an object: ignored, no crash (the reference's reader dies).
        let odd = GeminiEventMapper.events(forUpdate: parse(#"{"sessionUpdate":"agent_message_chunk","content":"text","delta":5}"#))
        #expect(odd.map(\.type) == ["stream_event"])
        let delta = GeminiEventMapper.events(forUpdate: parse(#"{"delta":{"type":"message","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}"#))
        #expect(delta[0].text == "ab")
    }

    @Test func permissionRequestKeepsTheIdAsSent() {
        let e = GeminiEventMapper.permissionEvent(
            id: 0, params: parse(#"{"toolCall":{"toolCallId":"t","title":"Edit x"},"options":[]}"#), raw: .null)
        #expect(e.requestID == .int(0) && e.tool == "Edit x" && e.args?["options"] == [])
    }

    @Test func permissionOptions() {
        #expect(GeminiPermission.optionID(message(#"{"behavior":"allow"}"#), options: geminiOptions) == "proceed_once")
        // No answer field denies (fail closed; the reference allowed).
        #expect(GeminiPermission.optionID(message(#"{}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"approved":false}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"behavior":"maybe"}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"decision":"allow_always"}"#), options: geminiOptions) == "proceed_always")
        #expect(GeminiPermission.optionID(message(#"{"behavior":"deny"}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"decision":"decline"}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"allow":true}"#), options: geminiOptions) == "proceed_once")
        // An offered option alone selects; with a verdict it must agree with it; unknown ids deny.
        #expect(GeminiPermission.optionID(message(#"{"optionId":"proceed_always"}"#), options: geminiOptions) == "proceed_always")
        #expect(GeminiPermission.optionID(message(#"{"optionId":"cancel"}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"optionId":"made_up"}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"optionId":"proceed_always","behavior":"deny"}"#), options: geminiOptions) == "cancel")
        #expect(GeminiPermission.optionID(message(#"{"optionId":"proceed_always","approved":"yes"}"#), options: geminiOptions) == "cancel")
        // No kinds: the reference's id-token rule; no options: the defaults.
        let bare: [JSON] = [["optionId": "yes_please"], ["optionId": "reject_it"]]
        #expect(GeminiPermission.optionID(message(#"{"behavior":"allow"}"#), options: bare) == "yes_please")
        #expect(GeminiPermission.optionID(message(#"{"behavior":"deny"}"#), options: bare) == "reject_it")
        #expect(GeminiPermission.optionID(message(#"{"behavior":"deny"}"#), options: []) == "cancel")
        #expect(
            GeminiPermission.optionID(message(#"{"behavior":"allow","args":{"options":[{"optionId":"ok"}]}}"#), options: []) == "ok")
        #expect(GeminiPermission.selected("proceed_once") == ["outcome": ["outcome": "selected", "optionId": "proceed_once"]])
        #expect(GeminiPermission.cancelled == ["outcome": ["outcome": "cancelled"]])
    }
}
