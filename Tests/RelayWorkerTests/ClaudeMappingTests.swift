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

@Suite struct NullHandlingTests {
    @Test func nullContentFallsBackToText() {
        #expect(Prompt(ClientMessage(frame: #"{"content":null,"text":"hi"}"#).object).trimmedText == "hi")
    }

    @Test func emptyWorkspaceIdFallsBackToSessionId() throws {
        let h = try Handshake.parse(#"{"workspace_id":"","session_id":"s"}"#, newSessionID: { "x" })
        #expect(h.workspaceID == "s")
    }
}

@Suite struct ClaudeCostTextTests {
    @Test func groupingIsPythons() {
        let cases: [(Int64, String)] = [
            (0, "0"), (7, "7"), (999, "999"), (1000, "1,000"), (-1234, "-1,234"), (1_234_567, "1,234,567"),
            (100_000, "100,000"), (Int64.max, "9,223,372,036,854,775,807"), (Int64.min, "-9,223,372,036,854,775,808"),
        ]
        for (n, text) in cases { #expect(ClaudeTotals.grouped(n) == text, "\(n)") }
    }

    @Test func totalsAndReplies() throws {
        var totals = ClaudeTotals()
        totals.add(result: try JSON.parse(
            #"{"type":"result","subtype":"success","total_cost_usd":0.01234,"usage":{"input_tokens":1200,"output_tokens":34,"cache_read_input_tokens":5000,"cache_creation_input_tokens":1}}"#))
        totals.add(result: try JSON.parse(#"{"type":"result","subtype":"error_max_turns","total_cost_usd":5}"#))
        #expect(totals == ClaudeTotals(cost: 0.01234, inputTokens: 1200, outputTokens: 34, turns: 1, lastContext: 6201))
        #expect(totals.costText == "**Session cost:** $0.0123\n**Input tokens:** 1,200\n**Output tokens:** 34\n**Turns:** 1")
        #expect(
            totals.statusText(model: "opus", pending: true, conversation: nil)
                == "**Model:** opus (applies next turn)\n**Session:** new (no turn yet)\n**Turns:** 1\n**Context (last turn):** 6,201 tokens\n**Cost so far:** $0.0123")
    }

    @Test func absurdUsageSaturatesInsteadOfTrapping() throws {
        var totals = ClaudeTotals()
        let huge = try JSON.parse(
            #"{"subtype":"success","usage":{"input_tokens":9223372036854775807,"output_tokens":-9223372036854775808,"cache_read_input_tokens":9223372036854775807}}"#)
        totals.add(result: huge)
        totals.add(result: huge)
        #expect(totals.inputTokens == .max && totals.outputTokens == .min && totals.lastContext == .max)
    }

    @Test func slashCommands() {
        #expect(ClaudeSlashCommand("/cost") == .cost && ClaudeSlashCommand("/status") == .status)
        #expect(ClaudeSlashCommand("/new") == .newConversation && ClaudeSlashCommand("/clear") == .newConversation)
        #expect(ClaudeSlashCommand("/cost please") == nil && ClaudeSlashCommand("/COST") == nil)
        #expect(ClaudeSlashCommand.cost.source == "cost_summary" && ClaudeSlashCommand.newConversation.source == "new_conversation")
    }

    @Test func installReply() {
        let ok = ClaudeInstall.response(output: "v2", code: 0)
        #expect(ok.text == "Claude Code updated to the latest version.\n\nv2\n\nSend any message to start a session with the new version.")
        #expect(ok.metadata == ["update_exit_code": 0, "source": "claude_update"])
        #expect(ClaudeInstall.response(output: "x", code: -1).text == "Update failed (exit -1).\n\nx")
    }
}
