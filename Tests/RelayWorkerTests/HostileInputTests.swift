import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// Parsed input that used to trap (or allocate without bound) is a clear refusal instead.
@Suite struct HostileInputTests {
    @Test func cortexTimeoutIsCheckedNotTrapped() throws {
        #expect(CortexSettings.requestTimeout(nil) == .seconds(300))
        #expect(CortexSettings.requestTimeout(.null) == .seconds(300))
        #expect(CortexSettings.requestTimeout(.int(1)) == .seconds(1))
        #expect(CortexSettings.requestTimeout(.string("2.5")) == .milliseconds(2500))
        #expect(CortexSettings.requestTimeout(.int(3600)) == .seconds(3600))
        for bad: JSON in ["nan", "NaN", "inf", "-inf", "1e999", "soon", "", .double(1e300), .double(-1), .int(0),
                          .double(0.5), .int(3601), .int(Int64.max), .int(Int64.min), true, [5], ["s": 5]] {
            #expect(CortexSettings.requestTimeout(bad) == nil, "\(bad)")
        }
    }

    @Test func cursorForwardIsCapped() {
        let out = TerminalText.clean("a\u{1B}[999999999999999999999Cb\u{1B}[9223372036854775807Cc")
        // Beyond Int: one space, as for a missing count; within Int: capped.
        #expect(out == "a b" + String(repeating: " ", count: TerminalText.maxCursorForward) + "c")
    }

    @Test func brokenObjectFramesAreRefusedNotPrompts() {
        guard case .failure(let error) = ClientMessage.read(#" {"type":"permission_response","request_id":18446744073709551617}"#) else {
            Issue.record("expected a parse error")
            return
        }
        #expect(error.message == "Integer out of range (not exactly representable)")
        // Anything that does not start like an object is a prompt text, as in the reference.
        guard case .success(let text) = ClientMessage.read("[1e400") else {
            Issue.record("expected a text message")
            return
        }
        #expect(text.text == "[1e400")
        #expect(ClientMessage(frame: "{broken").text == "{broken")
    }

    @Test func permissionIdsThatAreNotIds() {
        for bad in ["1e300", "-1e300", "1e-300", "1.5", "18446744073709551616", "true", "[]", "{}", "\"\"", "null"] {
            #expect(ClientMessage(frame: #"{"type":"permission_response","request_id":\#(bad)}"#).requestID == nil, "\(bad)")
        }
        #expect(ClientMessage(frame: #"{"request_id":-0.0}"#).requestID == "0")
        #expect(ClientMessage(frame: #"{"request_id":"NaN"}"#).requestID == "NaN")
        #expect(ClientMessage(frame: #"{"id":7}"#).requestID == "7")
    }

    @Test func handshakeIdsOfTheWrongTypeAreRefused() {
        for value in ["1e300", "1e-300", "18446744073709551616", "[1]"] {
            for field in ["session_id", "claude_session_id", "tool", "folder", "model"] {
                let text = #"{"tool":"claude","folder":"/tmp","\#(field)":\#(value)}"#
                #expect(throws: Handshake.Invalid(reason: "Invalid handshake: '\(field)' must be a string")) {
                    try Handshake.parse(text, newSessionID: { "s" })
                }
            }
        }
    }
}
