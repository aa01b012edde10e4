import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// Codex app-server mapping and approval answers, with the worker's fixes.
@Suite struct CodexAdapterTests {
    func parse(_ s: String) -> JSON { try! JSON.parse(s) }

    func notify(_ method: String, _ params: String) -> [RelayEvent] {
        CodexEventMapper.notificationEvents(method: method, params: parse(params), raw: .null)
    }

    func message(_ s: String) -> ClientMessage { ClientMessage(frame: s) }

    @Test func approvalRequestWithIntegerIdZero() {
        let params = parse(#"{"itemId":"call_1","command":"ls -la","reason":null}"#)
        let e = CodexEventMapper.requestEvent(
            key: "0", method: "item/commandExecution/requestApproval", params: params, raw: .null)
        #expect(e.type == "permission_request" && e.requestID == "0" && e.tool == "commandExecution")
        #expect(e.toolUseID == "call_1" && e.text == "ls -la" && e.args == params)
        #expect(e.metadata == ["method": "item/commandExecution/requestApproval"])
        let tool = CodexEventMapper.requestEvent(key: "5", method: "item/tool/call", params: parse(#"{"tool":"lookup"}"#), raw: .null)
        #expect(tool.type == "tool_call" && tool.tool == "lookup" && tool.text == "item/tool/call")
    }

    @Test func warningsAreStatusNotContextWarnings() {
        for method in ["configWarning", "deprecationNotice"] {
            let events = notify(method, #"{"summary":"bubblewrap missing","details":"install it"}"#)
            #expect(events.map(\.type) == ["status"])
            #expect(events[0].status == method && events[0].text == "bubblewrap missing\ninstall it")
        }
        #expect(notify("warning", #"{"message":"heads up"}"#)[0].text == "heads up")
    }

    @Test func errorsRetriesAndContextWindow() {
        let failed = notify("error", #"{"error":{"message":"429 Too Many Requests"},"willRetry":false}"#)
        #expect(failed.map(\.type) == ["error"] && failed[0].text == "429 Too Many Requests")
        let retry = notify("error", #"{"error":{"message":"Reconnecting 1/5"},"willRetry":true}"#)
        #expect(retry[0].type == "status" && retry[0].status == "retrying")
        let full = notify("error", #"{"error":{"message":"too long","codexErrorInfo":"contextWindowExceeded"},"willRetry":false}"#)
        #expect(full[0].type == "context_warning")
    }

    @Test func realFieldNames() {
        let diff = notify("turn/diff/updated", #"{"threadId":"t","turnId":"u","diff":"diff --git a b"}"#)
        #expect(diff[0].type == "file_diff" && diff[0].diff == "diff --git a b")
        let patch = notify("item/fileChange/patchUpdated", #"{"itemId":"i","changes":[{"path":"/p/a.py","kind":{"type":"update"},"diff":"@@ -1 +1 @@"}]}"#)
        #expect(patch[0].diff == "@@ -1 +1 @@" && patch[0].filePath == "/p/a.py")
        let progress = notify("item/mcpToolCall/progress", #"{"itemId":"i","message":"half way"}"#)
        #expect(progress[0].type == "tool_progress" && progress[0].text == "half way" && progress[0].toolUseID == "i")
        let exec = notify("command/exec/outputDelta", #"{"processId":"p","deltaBase64":"aGVsbG8K"}"#)
        #expect(exec[0].text == "hello\n" && exec[0].tool == "commandExecution")
    }

    @Test func items() {
        let started = notify("item/started", #"{"item":{"type":"commandExecution","id":"c1","command":"ls","cwd":"/p","status":"inProgress"}}"#)
        #expect(started[0].type == "tool_call" && started[0].args == ["command": "ls", "cwd": "/p"] && started[0].status == "inProgress")
        let done = notify("item/completed", #"{"item":{"type":"commandExecution","id":"c1","aggregatedOutput":null,"exitCode":null,"status":"declined"}}"#)
        #expect(done[0].type == "tool_result" && done[0].text == nil && done[0].exitCode == nil && done[0].status == "declined")
        let file = notify("item/completed", #"{"item":{"type":"fileChange","id":"f","changes":[{"path":"/a","diff":"x"},{"path":"/b","diff":"y"}]}}"#)
        #expect(file[0].type == "file_diff" && file[0].filePath == "/a" && file[0].diff == "*** /a\nx\n*** /b\ny")
        let user = notify("item/started", #"{"item":{"type":"userMessage","id":"u"}}"#)
        #expect(user[0].type == "stream_event")
        let turn = notify("turn/completed", #"{"threadId":"t","turn":{"id":"u1","status":"interrupted"}}"#)
        #expect(turn[0].status == "completed" && turn[0].metadata?["turn"]?["status"] == "interrupted")
    }

    @Test func approvalAnswerForms() {
        let cmd = "item/commandExecution/requestApproval"
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"behavior":"allow"}"#)) == ["decision": "accept"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"behavior":"deny"}"#)) == ["decision": "decline"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"allow":true}"#)) == ["decision": "accept"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"approved":false}"#)) == ["decision": "decline"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"decision":"acceptForSession"}"#)) == ["decision": "acceptForSession"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0}"#)) == ["decision": "decline"])
        // A `response` object for an approval is read with the same verdict, not sent verbatim.
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"response":{"decision":"cancel"}}"#)) == ["decision": "cancel"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"response":{"decision":"yes"}}"#)) == ["decision": "decline"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"behavior":"maybe"}"#)) == ["decision": "decline"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"behavior":"allow","approved":false}"#)) == ["decision": "decline"])
        #expect(CodexApproval.result(for: cmd, message(#"{"request_id":0,"decision":{"acceptWithExecpolicyAmendment":{}}}"#)) == ["decision": "decline"])
        // Other server requests get the client's response verbatim.
        #expect(CodexApproval.result(for: "item/tool/call", message(#"{"response":{"output":"x"}}"#)) == ["output": "x"])
        let file = "item/fileChange/requestApproval"
        #expect(CodexApproval.result(for: file, message(#"{"decision":"approved_for_session"}"#)) == ["decision": "acceptForSession"])
        #expect(CodexApproval.result(for: file, message(#"{"decision":"whatever"}"#)) == ["decision": "decline"])
        #expect(CodexApproval.result(for: "execCommandApproval", message(#"{"behavior":"allow"}"#)) == ["decision": "approved"])
        #expect(
            CodexApproval.result(for: "item/permissions/requestApproval", message(#"{"allow":true}"#))
                == ["permissions": .object(JSONObject()), "scope": "turn"])
        #expect(
            CodexApproval.result(for: "item/permissions/requestApproval", message(#"{"approved":false,"permissions":{"fs":true}}"#))
                == ["permissions": .object(JSONObject()), "scope": "turn"])
        // Allowed: exactly the requested grant, whatever the client wrote into its answer.
        let asked: JSON = ["permissions": ["network": ["enabled": true]], "reason": "fetch"]
        let wider = message(#"{"behavior":"allow","permissions":{"fileSystem":{"write":["/"]},"network":{"enabled":true}}}"#)
        #expect(
            CodexApproval.result(for: "item/permissions/requestApproval", requested: asked, wider)
                == ["permissions": ["network": ["enabled": true]], "scope": "turn"])
        #expect(
            CodexApproval.result(for: "item/permissions/requestApproval", requested: asked, message(#"{"decision":"acceptForSession"}"#))
                == ["permissions": ["network": ["enabled": true]], "scope": "session"])
        #expect(
            CodexApproval.result(for: "item/permissions/requestApproval", requested: asked, message(#"{"behavior":"maybe"}"#))
                == ["permissions": .object(JSONObject()), "scope": "turn"])
        #expect(message(#"{"type":"permission_response","request_id":0}"#).requestID == "0")
    }

    @Test func policy() {
        var options = WorkerOptions(baseEnvironment: [:])
        #expect(CodexPolicy.handshakeRefusal(JSONObject(["config": ["a": 1]]), options: options) != nil)
        #expect(CodexPolicy.handshakeRefusal(JSONObject(["sandbox": "danger-full-access"]), options: options) != nil)
        #expect(CodexPolicy.handshakeRefusal(JSONObject(["sandbox": "workspace-write", "config": .null]), options: options) == nil)
        options.allowCodexConfig = true
        options.allowCodexFullAccess = true
        #expect(CodexPolicy.handshakeRefusal(JSONObject(["config": ["a": 1], "sandbox": "danger-full-access"]), options: options) == nil)
        #expect(CodexPolicy.widensSandbox(["type": "workspaceWrite", "writableRoots": ["/etc"]]))
        #expect(!CodexPolicy.widensSandbox(["type": "readOnly"]))
    }

    @Test func nilLiteralTrap() {
        let present: JSON? = .null
        #expect(present.nonNull == nil && present.truthy == nil)
        let empty: JSON? = ""
        #expect(empty.truthy == nil && empty.nonNull == "")
    }
}
