import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// The one permission verdict (fail closed) every adapter uses.
@Suite struct PermissionVerdictTests {
    static let table: [(String, PermissionVerdict)] = [
        (#"{"behavior":"allow"}"#, .allow), (#"{"allow":true}"#, .allow), (#"{"approved":true}"#, .allow),
        (#"{"decision":"accept"}"#, .allow), (#"{"decision":"accepted"}"#, .allow), (#"{"decision":"approve"}"#, .allow),
        (#"{"decision":"approved"}"#, .allow), (#"{"decision":"allow"}"#, .allow), (#"{"decision":"allowed"}"#, .allow),
        (#"{"behavior":"approve"}"#, .allow), (#"{"behavior":"allow","allow":true,"approved":true}"#, .allow),
        (#"{"behavior":"allow","decision":null}"#, .allow),
        (#"{"decision":"acceptForSession"}"#, .allowForSession), (#"{"decision":"approved_for_session"}"#, .allowForSession),
        (#"{"decision":"allow_always"}"#, .allowForSession), (#"{"behavior":"allow","decision":"allow_always"}"#, .allowForSession),
        (#"{"decision":"cancel"}"#, .cancel), (#"{"decision":"abort"}"#, .cancel),
        // Everything else denies.
        (#"{}"#, .deny), (#"{"request_id":1}"#, .deny), (#"{"approved":false}"#, .deny), (#"{"allow":false}"#, .deny),
        (#"{"behavior":"deny"}"#, .deny), (#"{"behavior":"maybe"}"#, .deny), (#"{"behavior":"Allow"}"#, .deny),
        (#"{"behavior":""}"#, .deny), (#"{"behavior":true}"#, .deny), (#"{"behavior":["allow"]}"#, .deny),
        (#"{"decision":"decline"}"#, .deny), (#"{"decision":"whatever"}"#, .deny), (#"{"decision":{"accept":{}}}"#, .deny),
        (#"{"decision":1}"#, .deny), (#"{"allow":1}"#, .deny), (#"{"allow":"true"}"#, .deny), (#"{"approved":"yes"}"#, .deny),
        (#"{"behavior":"allow","approved":false}"#, .deny), (#"{"allow":true,"decision":"deny"}"#, .deny),
        (#"{"decision":"accept","behavior":"maybe"}"#, .deny), (#"{"decision":"cancel","allow":true}"#, .deny),
        (#"{"behavior":null,"allow":null}"#, .deny), (#"{"text":"allow"}"#, .deny),
    ]

    @Test(arguments: table.indices)
    func reading(_ i: Int) throws {
        let (text, expected) = Self.table[i]
        let object = try #require(try JSON.parse(text).objectValue)
        #expect(PermissionVerdict(object) == expected, "\(text)")
    }

    @Test func claudeCodexAndGeminiAgree() throws {
        for (text, expected) in Self.table {
            let message = ClientMessage(frame: text)
            #expect(GeminiPermission.allows(message) == expected.allows, "gemini \(text)")
            let codex = CodexApproval.result(for: "item/commandExecution/requestApproval", message)
            #expect((codex == ["decision": "accept"] || codex == ["decision": "acceptForSession"]) == expected.allows, "codex \(text)")
        }
    }
}
