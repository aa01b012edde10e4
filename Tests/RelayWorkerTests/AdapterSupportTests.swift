import Foundation
import Logging
import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// The JSON-RPC call table and the auth helpers' file handling.
@Suite struct AdapterSupportTests {
    @Test func answerBeforeWaitIsKept() async throws {
        let calls = RPCCalls()
        try calls.reserve("1")
        #expect(calls.resolve("1", ["result": 1]))
        let answer = try await calls.wait("1", timeout: .seconds(5), timeoutMessage: "t")
        #expect(answer == ["result": 1])
        #expect(!calls.resolve("1", .null))
    }

    @Test func timeoutAndClose() async throws {
        let calls = RPCCalls()
        try calls.reserve("2")
        await #expect(throws: RPCError.self) { try await calls.wait("2", timeout: .milliseconds(50), timeoutMessage: "slow") }
        try calls.reserve("3")
        async let waiting = calls.wait("3", timeout: .seconds(30), timeoutMessage: "t")
        try await Task.sleep(for: .milliseconds(20))
        calls.close("gone")
        do {
            _ = try await waiting
            Issue.record("expected a failure")
        } catch let error as RPCError {
            #expect(error.description == "gone")
        }
        #expect(throws: RPCError.self) { try calls.reserve("4") }
        calls.reopen()
        try calls.reserve("4")
    }

    func tempHome() -> String {
        let dir = NSTemporaryDirectory() + "auth-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func geminiSelectsTheAuthTypeOnce() async throws {
        let home = tempHome()
        let options = WorkerOptions(baseEnvironment: [:])
        var env = ["HOME": home, "GEMINI_API_KEY": "k"]
        await GeminiAuth.prepare(&env, options: options, logger: Logger(label: "t"))
        let path = home + "/.gemini/settings.json"
        #expect(AuthFiles.readObject(path) == JSONObject(["security": ["auth": ["selectedType": "gemini-api-key"]]]))
        var info = stat()
        stat(path, &info)
        #expect(info.st_mode & 0o777 == 0o600)
        // Other settings are kept; oauth creds + prefer switch remove the key.
        try AuthFiles.writeObject(JSONObject(["theme": "dark", "security": ["auth": ["selectedType": "x"]]]), to: path)
        try AuthFiles.writeObject(JSONObject(["access_token": "a", "refresh_token": "r", "expiry_date": .int(AuthFiles.nowMillis() + 3_600_000)]), to: home + "/.gemini/oauth_creds.json")
        env["AI_RELAY_GEMINI_PREFER_OAUTH"] = "yes"
        env["GOOGLE_API_KEY"] = "g"
        await GeminiAuth.prepare(&env, options: options, logger: Logger(label: "t"))
        #expect(env["GEMINI_API_KEY"] == nil && env["GOOGLE_API_KEY"] == nil)
        #expect(AuthFiles.readObject(path) == JSONObject(["theme": "dark", "security": ["auth": ["selectedType": "oauth-personal"]]]))
    }

    @Test func codexPrefersChatGPT() throws {
        let home = tempHome()
        let options = WorkerOptions(baseEnvironment: [:])
        var env = ["HOME": home, "OPENAI_API_KEY": "k", "AI_RELAY_CODEX_PREFER_CHATGPT": "1"]
        CodexAuth.prepare(&env, options: options, logger: Logger(label: "t"))
        #expect(env["OPENAI_API_KEY"] == "k")  // no auth.json yet
        try AuthFiles.writeObject(JSONObject(["tokens": ["access_token": "a", "refresh_token": "r"]]), to: home + "/.codex/auth.json")
        CodexAuth.prepare(&env, options: options, logger: Logger(label: "t"))
        #expect(env["OPENAI_API_KEY"] == nil)
    }

    @Test func claudePreferOAuthAndThirdPartySkip() async throws {
        let home = tempHome()
        let options = WorkerOptions(baseEnvironment: ["CLAUDE_OAUTH_CLIENT_ID": "cid"])
        try AuthFiles.writeObject(
            JSONObject(["claudeAiOauth": ["accessToken": "a", "expiresAt": .int(AuthFiles.nowMillis() + 3_600_000)]]),
            to: home + "/.claude/.credentials.json")
        var kimi = ["HOME": home, "ANTHROPIC_BASE_URL": "https://api.moonshot.ai/anthropic", "ANTHROPIC_API_KEY": "m",
                    "AI_RELAY_CLAUDE_PREFER_OAUTH": "1"]
        await ClaudeAuth.prepare(&kimi, options: options, logger: Logger(label: "t"))
        #expect(kimi["ANTHROPIC_API_KEY"] == "m")
        var claude = ["HOME": home, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_AUTH_TOKEN": "t", "AI_RELAY_CLAUDE_PREFER_OAUTH": "1"]
        await ClaudeAuth.prepare(&claude, options: options, logger: Logger(label: "t"))
        #expect(claude["ANTHROPIC_API_KEY"] == nil && claude["ANTHROPIC_AUTH_TOKEN"] == nil)
    }

    @Test func prettyJSON() {
        #expect(AuthFiles.pretty(["a": [1, 2], "b": [:] as JSON, "c": "x"]) == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": \"x\"\n}")
    }
}
