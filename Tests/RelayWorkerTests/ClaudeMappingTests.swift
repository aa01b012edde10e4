import RelayProtocol
import Testing

@testable import RelayWorkerCore

@Suite struct ClaudeMappingTests {
    func map(_ line: String) -> [RelayEvent] { ClaudeEventMapper.events(forLine: Array(line.utf8)).events }

    @Test func assistantWithToolUse() {
        let events = map(
            #"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]}}"#
        )
        #expect(events.map(\.type) == ["assistant_message", "tool_call"])
        #expect(events[1].tool == "Bash" && events[1].toolUseID == "t1" && events[1].args == ["command": "ls"])
        #expect(events[0].raw != nil)
    }

    @Test func permissionRequestKeepsNullMetadata() {
        let events = map(
            #"{"type":"control_request","request_id":"r1","request":{"subtype":"can_use_tool","tool_name":"Write","input":{"file_path":"a"},"tool_use_id":"t9","decision_reason":"why"}}"#
        )
        #expect(events.count == 1)
        let e = events[0]
        #expect(e.type == "permission_request" && e.requestID == "r1" && e.tool == "Write" && e.text == "why")
        #expect(e.metadata == ["permission_suggestions": nil, "blocked_path": nil, "agent_id": nil])
    }

    @Test func snakeCaseApiErrorIsQuotaWarning() {
        let events = map(
            #"{"type":"assistant","message":{"content":[{"type":"text","text":"API Error: 429"}]},"is_api_error_message":true,"api_error_status":429,"error":"rate_limit"}"#
        )
        #expect(events.map(\.type) == ["quota_warning"])
        #expect(events[0].metadata?["api_error_status"] == .int(429))
    }

    @Test func camelCasePromptTooLongIsContextWarning() {
        let events = map(
            #"{"type":"assistant","message":{"content":[{"type":"text","text":"Prompt is too long"}]},"isApiErrorMessage":true,"apiErrorStatus":400}"#
        )
        #expect(events.map(\.type) == ["context_warning"])
    }

    @Test func resultWithIsErrorIsError() {
        #expect(map(#"{"type":"result","subtype":"success","is_error":true,"result":"x"}"#).map(\.type) == ["error"])
        #expect(map(#"{"type":"result","subtype":"success","result":"done"}"#).map(\.text) == ["done"])
        #expect(map(#"{"type":"result","subtype":"error_during_execution","errors":["a","b"]}"#).first?.text == "a, b")
    }

    @Test func artifactsAreExtracted() {
        let result = #"{"type":"result","subtype":"success","result":"Intro\n[ARTIFACT type=\"HTML\" title=\"T\" lang=\"x\"]<b>x</b>[/ARTIFACT]\n\n\n\nOutro"}"#
        let events = map(result)
        #expect(events.map(\.type) == ["response", "artifact"])
        #expect(events[0].text == "Intro\n\nOutro")
        #expect(events[1].text == "<b>x</b>" && events[1].artifactType == "html" && events[1].title == "T")
        #expect(events[1].metadata == ["lang": "x"])
    }

    @Test func nonJSONAndBlankLines() {
        #expect(map("hello").map(\.text) == [.string("hello")])
        #expect(map("[1,2]").map(\.type) == ["stdout"])
        let blank = map("  ")
        #expect(blank.allSatisfy { $0.isEmpty })
    }

    @Test func otherControlMessages() {
        #expect(map(#"{"type":"control_cancel_request","request_id":"r1"}"#).map(\.type) == ["permission_cancelled"])
        #expect(map(#"{"type":"control_response","response":{"request_id":"relay-1"}}"#).first?.requestID == "relay-1")
        #expect(map(#"{"type":"system","subtype":"compact_boundary"}"#).map(\.type) == ["context_compacted"])
        #expect(map(#"{"type":"weird"}"#).map(\.type) == ["stdout"])
    }
}

@Suite struct ClientMessageTests {
    @Test func frameParsingAndAcks() {
        #expect(ClientMessage(frame: "hello").text == "hello")
        #expect(ClientMessage(frame: "[1, 2]").text == "[1, 2]")
        #expect(ClientMessage(frame: #"{"type":"ping"}"#).ack == nil)
        #expect(ClientMessage(frame: #"{"type":"set_approval_policy"}"#).ack?.text == "set_approval_policy")
        #expect(ClientMessage(frame: #"{"content":"x"}"#).ack?.text == nil)
        #expect(ClientMessage(frame: #"{"text":""}"#).isEmpty)
        #expect(!ClientMessage(frame: #"{"type":"interrupt"}"#).isEmpty)
    }

    @Test func requestIdMayBeAnInteger() {
        #expect(ClientMessage(frame: #"{"type":"permission_response","request_id":0}"#).requestID == "0")
        #expect(ClientMessage(frame: #"{"type":"permission_response","request_id":"r"}"#).requestID == "r")
        #expect(ClientMessage(frame: #"{"type":"permission_response","request_id":""}"#).requestID == nil)
    }

    @Test func promptExtraction() {
        #expect(ClientMessage(frame: #"{"content":[{"type":"text","text":" a "},{"type":"input_text","text":"b"}]}"#).promptText == "a \nb")
        #expect(ClientMessage(frame: #"{"content":[{"type":"image","source":{}}]}"#).promptText == "[image]")
        #expect(ClientMessage(frame: "  /cost ").promptText == "/cost")
    }
}

@Suite struct NullHandlingTests {
    @Test func nullContentFallsBackToText() {
        #expect(ClientMessage(frame: #"{"content":null,"text":"hi"}"#).promptText == "hi")
    }

    @Test func emptyWorkspaceIdFallsBackToSessionId() throws {
        let h = try Handshake.parse(#"{"workspace_id":"","session_id":"s"}"#, newSessionID: { "x" })
        #expect(h.workspaceID == "s")
    }
}
