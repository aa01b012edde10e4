import RelayProtocol
import Testing

@testable import RelayWorkerCore

@Suite struct HandshakeTests {
    func parse(_ text: String) throws(Handshake.Invalid) -> Handshake {
        try Handshake.parse(text, newSessionID: { "generated" })
    }

    func reason(_ text: String) -> String? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func defaults() throws {
        let h = try parse("{}")
        #expect(h.tool == "claude" && h.folder == "." && h.model == nil && h.sessionID == "generated")
        #expect(h.workspaceID == "generated")
    }

    @Test func toolIsLowerCasedButReportedAsSent() throws {
        let h = try parse(#"{"tool":"Claude-Code","session_id":"s1","workspace_id":"w"}"#)
        #expect(h.tool == "claude-code" && h.toolAsSent == "Claude-Code" && h.sessionID == "s1" && h.workspaceID == "w")
    }

    @Test func referenceErrorTexts() {
        #expect(reason("nope") == "Invalid handshake: Expecting value")
        #expect(reason("[1]") == "Invalid handshake: handshake must be a JSON object")
        #expect(reason(#"{"extra_args":"x"}"#) == "Invalid handshake: extra_args must be a list of strings")
        #expect(reason(#"{"extra_args":[1]}"#) == "Invalid handshake: extra_args must be a list of strings")
        #expect(reason(#"{"extra_args":["a b"]}"#)?.hasPrefix("Invalid handshake: extra_arg 'a b' contains disallowed characters") == true)
        #expect(reason(#"{"extra_args":["abc\n"]}"#)?.contains("disallowed characters") == true)
    }

    @Test func typeErrorsAreClearInsteadOfCrashes() {
        #expect(reason(#"{"tool":5}"#) == "Invalid handshake: 'tool' must be a string")
        #expect(reason(#"{"folder":[]}"#) == "Invalid handshake: 'folder' must be a string")
        #expect(reason(#"{"model":{}}"#) == "Invalid handshake: 'model' must be a string")
        #expect(reason(#"{"env":"x"}"#) == "Invalid handshake: 'env' must be an object")
        #expect(reason(#"{"env":{"CLAUDE_X":{}}}"#) == "Invalid handshake: env value for 'CLAUDE_X' must be a string")
        #expect(reason(#"{"session_id":{"a":1}}"#) == "Invalid handshake: 'session_id' must be a string")
    }

    @Test func envScalarsBecomeStrings() throws {
        let h = try parse(#"{"env":{"CLAUDE_A":true,"CLAUDE_B":3}}"#)
        #expect(h.env == ["CLAUDE_A": "true", "CLAUDE_B": "3"])
    }
}
