import RelayProtocol
import Testing

@testable import RelayWorkerCore

/// Cortex settings and allow-lists, SSE parsing and the per-mode mapping.
@Suite struct CortexAdapterTests {
    func options(_ change: (inout WorkerOptions) -> Void = { _ in }) -> WorkerOptions {
        var o = WorkerOptions(baseEnvironment: ["SNOWFLAKE_PAT": "pat", "SECRET": "s"])
        change(&o)
        return o
    }

    func handshake(_ json: String) -> Handshake { try! Handshake.parse(json, newSessionID: { "s" }) }

    func resolve(_ json: String, _ o: WorkerOptions? = nil) -> Result<CortexSettings, CortexSettings.Refusal> {
        CortexSettings.resolve(handshake(json), options: o ?? options())
    }

    @Test(arguments: [
        ("https://acct.snowflakecomputing.com", true), ("https://a.b.snowflakecomputing.com/", true),
        ("https://ACCT.SnowflakeComputing.com:443", true), ("https://snowflakecomputing.com", false),
        ("https://evil.com/x.snowflakecomputing.com", false), ("https://acct.snowflakecomputing.com.evil.com", false),
        ("http://acct.snowflakecomputing.com", false), ("https://acct.snowflakecomputing.com:8443", false),
        ("https://u:p@acct.snowflakecomputing.com", false), ("https://acct.snowflakecomputing.com?x=1", false),
        ("https://169.254.169.254", false), ("file:///etc/passwd", false), ("http://127.0.0.1:9", false),
    ])
    func accountURLs(url: String, allowed: Bool) {
        let result = CortexEndpointPolicy.check(accountURL: url, options: options())
        if case .success = result { #expect(allowed, "\(url)") } else { #expect(!allowed, "\(url)") }
    }

    @Test func operatorOrigins() {
        let o = options { $0.cortexAllowedOrigins = [CortexEndpointPolicy.normalizedOrigin("http://127.0.0.1:8080")!] }
        #expect((try? CortexEndpointPolicy.check(accountURL: "http://127.0.0.1:8080/", options: o).get()) == "http://127.0.0.1:8080")
        #expect((try? CortexEndpointPolicy.check(accountURL: "http://127.0.0.1:8081", options: o).get()) == nil)
        #expect(CortexEndpointPolicy.normalizedOrigin("https://Example.com") == "https://example.com:443")
        #expect(CortexEndpointPolicy.normalizedOrigin("http://h/path") == nil)
    }

    @Test func tokens() throws {
        let s = try resolve(#"{"tool":"cortex","snowflake":{"account_url":"https://a.snowflakecomputing.com"}}"#).get()
        #expect(s.token == "pat" && s.tokenType == "PROGRAMMATIC_ACCESS_TOKEN" && s.mode == .agent)
        #expect(s.endpoint == "https://a.snowflakecomputing.com/api/v2/cortex/agent:run")
        guard case .failure(let refusal) = resolve(
            #"{"tool":"cortex","snowflake":{"account_url":"https://a.snowflakecomputing.com","token_env":"SECRET"}}"#)
        else { Issue.record("token_env SECRET must be refused"); return }
        #expect(refusal.description.contains("token_env 'SECRET'"))
        let own = try resolve(
            #"{"tool":"cortex","token":"mine","token_type":null,"account_url":"https://a.snowflakecomputing.com","mode":"chat"}"#
        ).get()
        #expect(own.token == "mine" && own.tokenType == nil && own.mode == .chat)
        guard case .failure(let missing) = resolve(#"{"tool":"cortex","account_url":"https://a.snowflakecomputing.com"}"#, options { $0.baseEnvironment = [:] })
        else { Issue.record("no token must be refused"); return }
        #expect(missing.description.hasPrefix("Snowflake Cortex requires a token"))
    }

    @Test func analystNeedsASemanticModel() throws {
        guard case .failure = resolve(#"{"tool":"cortex","mode":"analyst","account_url":"https://a.snowflakecomputing.com"}"#)
        else { Issue.record("analyst without semantic model"); return }
        let s = try resolve(#"{"tool":"cortex","mode":"analyst","account_url":"https://a.snowflakecomputing.com","snowflake":{"semantic_view":"V"}}"#).get()
        #expect(s.body(history: []) == ["messages": [], "stream": true, "semantic_view": "V"])
    }

    @Test func chatBodyFlattensListContent() throws {
        let s = try resolve(#"{"tool":"cortex","mode":"chat","model":"m","account_url":"https://a.snowflakecomputing.com"}"#).get()
        let history: [JSON] = [["role": "assistant", "content": [["type": "text", "text": "a"], ["type": "text", "text": "b"]]]]
        #expect(s.body(history: history) == ["model": "m", "messages": [["role": "assistant", "content": "a b"]], "stream": true])
    }

    @Test func sse() {
        var p = CortexSSEParser()
        var out: [(String, String)] = []
        for line in [": comment", "event: response.text.delta", "data: {\"a\":", "data:  1}", "", "data: [DONE]", "", "data: tail"] {
            if let e = p.push(line) { out.append(e) }
        }
        if let e = p.finish() { out.append(e) }
        #expect(out.map(\.0) == ["response.text.delta", "message", "message"])
        #expect(out.map(\.1) == ["{\"a\":\n 1}", "[DONE]", "tail"])
    }

    @Test func agentMapping() {
        let text = CortexEventMapper.map(mode: .agent, name: "x", data: #"{"type":"response.text.delta","delta":"Hi"}"#)
        #expect(text.events[0].type == "response" && text.text == "Hi")
        let tool = CortexEventMapper.map(mode: .agent, name: "response.tool_use", data: #"{"tool_use":{"id":"t","name":"sql","input":{"q":1}}}"#)
        #expect(tool.events[0].type == "tool_call" && tool.events[0].text == "sql\n{\n  \"q\": 1\n}")
        let err = CortexEventMapper.map(mode: .agent, name: "error", data: #"{"message":"bad"}"#)
        #expect(err.events[0].type == "error" && err.events[0].text == "bad")
        #expect(CortexEventMapper.map(mode: .agent, name: "message.stop", data: "{}").events.isEmpty)
        #expect(CortexEventMapper.map(mode: .agent, name: "x", data: "[DONE]").events[0].status == "done")
        let sql = CortexEventMapper.map(mode: .agent, name: "response.sql", data: #"{"sql":"select 1"}"#)
        #expect(sql.events[0].text == "[SQL]\nselect 1" && sql.events[0].tool == "sql")
    }

    @Test func chatAndAnalystMapping() {
        let chat = CortexEventMapper.map(mode: .chat, name: "message", data: #"{"choices":[{"delta":{"content":"Hi"}}]}"#)
        #expect(chat.text == "Hi")
        #expect(CortexEventMapper.map(mode: .chat, name: "message", data: #"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).events[0].status == "stop")
        let sql = CortexEventMapper.map(mode: .analyst, name: "message.content.delta", data: #"{"type":"sql","statement_delta":"SELECT","index":1}"#)
        #expect(sql.events[0].type == "tool_call" && sql.sql?.index == 1 && sql.sql?.delta == "SELECT")
        let warn = CortexEventMapper.map(mode: .analyst, name: "warnings", data: #"{"warnings":[]}"#)
        #expect(warn.events[0].type == "status" && warn.events[0].status == "warnings")
    }
}
