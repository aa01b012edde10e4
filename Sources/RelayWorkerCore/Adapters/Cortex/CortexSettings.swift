import RelayProtocol

/// A Cortex session's settings: each key from the handshake's `snowflake` object (a
/// present key wins even when null), else the handshake top level, else the default; checked once
/// at session start (the reference checks per prompt, and not the destination at all).
struct CortexSettings: Sendable {
    enum Mode: String, Sendable { case agent, chat, analyst }

    let mode: Mode
    let baseURL: String
    let token: String
    let tokenType: String?
    let model: String
    let timeout: Duration
    let tools: JSON?
    let responseFormat: JSON?
    let semantic: JSONObject
    let history: [JSON]

    struct Refusal: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func resolve(_ handshake: Handshake, options: WorkerOptions) -> Result<CortexSettings, Refusal> {
        let raw = handshake.raw
        let snowflake = raw["snowflake"]?.objectValue ?? JSONObject()
        func setting(_ key: String) -> JSON? {
            if snowflake.has(key) { return snowflake[key] }
            return raw[key]
        }
        let modeText = [raw["mode"], snowflake["mode"]].lazy.compactMap { $0 }.first { $0.isTruthy }?.textValue ?? "agent"
        let mode = Mode(rawValue: modeText) ?? .chat

        guard let accountURL = setting("account_url"), accountURL.isTruthy else {
            return .failure(
                Refusal(
                    "Snowflake Cortex requires snowflake.account_url (e.g. https://<account>.snowflakecomputing.com)"))
        }
        let baseURL: String
        switch CortexEndpointPolicy.check(accountURL: accountURL.textValue, options: options) {
        case .success(let url): baseURL = url
        case .failure(let refusal): return .failure(Refusal("Snowflake Cortex: \(refusal.description)"))
        }

        var token = setting("token").flatMap { $0.isTruthy ? $0.textValue : nil }
        let tokenEnv = setting("token_env")
        if let tokenEnv, tokenEnv.isTruthy, !options.cortexTokenEnvs.contains(tokenEnv.textValue) {
            return .failure(
                Refusal("Snowflake Cortex: token_env '\(tokenEnv.textValue)' is not on this worker's allow-list"))
        }
        if token == nil {
            let name = tokenEnv.flatMap { $0.isTruthy ? $0.textValue : nil } ?? (tokenEnv == nil ? "SNOWFLAKE_PAT" : nil)
            if let name, options.cortexTokenEnvs.contains(name), let value = options.baseEnvironment[name], !value.isEmpty {
                token = value
            }
        }
        guard let token else {
            return .failure(
                Refusal(
                    "Snowflake Cortex requires a token (PAT). Set snowflake.token in config or SNOWFLAKE_PAT env var."))
        }

        var semantic = JSONObject()
        for key in ["semantic_model_file", "semantic_model", "semantic_models", "semantic_view"] {
            if let v = setting(key), !v.isNull { semantic[key] = v }
        }
        if mode == .analyst, semantic.isEmpty {
            return .failure(
                Refusal(
                    "Cortex Analyst requires one of: snowflake.semantic_model_file, semantic_model, semantic_models, or semantic_view."
                ))
        }
        let tokenType: String?
        if snowflake.has("token_type") || raw.has("token_type") {
            tokenType = setting("token_type").flatMap { $0.isTruthy ? $0.textValue : nil }
        } else {
            tokenType = "PROGRAMMATIC_ACCESS_TOKEN"
        }
        let model = handshake.model.flatMap { $0.isEmpty ? nil : $0 }
            ?? setting("model").flatMap { $0.isTruthy ? $0.textValue : nil } ?? "claude-3-5-sonnet"
        guard let timeout = requestTimeout(setting("timeout")) else {
            return .failure(Refusal("Snowflake Cortex: 'timeout' must be a number of seconds from 1 to \(maxTimeoutSeconds)"))
        }
        return .success(
            CortexSettings(
                mode: mode, baseURL: baseURL, token: token, tokenType: tokenType, model: model,
                timeout: timeout,
                tools: setting("tools").truthy,
                responseFormat: setting("response_format").truthy, semantic: semantic,
                history: raw["cortex_history"]?.arrayValue ?? []))
    }

    static let maxTimeoutSeconds = 3600

    /// The whole-request timeout: absent or null → 300 s; a number (or numeric string) of seconds
    /// in 1...3600; anything else (NaN, 1e300, -1, "soon") → nil, a refusal rather than a trap.
    static func requestTimeout(_ value: JSON?) -> Duration? {
        guard let value, !value.isNull else { return .seconds(300) }
        guard let seconds = value.doubleValue ?? value.stringValue.flatMap(Double.init),
            seconds.isFinite, seconds >= 1, seconds <= Double(maxTimeoutSeconds)
        else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    var endpoint: String {
        switch mode {
        case .agent: return baseURL + "/api/v2/cortex/agent:run"
        case .analyst: return baseURL + "/api/v2/cortex/analyst/message"
        case .chat: return baseURL + "/api/v2/cortex/v1/chat/completions"
        }
    }

    /// The request body for the conversation so far.
    func body(history: [JSON]) -> JSON {
        switch mode {
        case .analyst:
            var body = JSONObject(["messages": .array(history), "stream": true])
            for (k, v) in semantic { body[k] = v }
            return .object(body)
        case .agent:
            var body = JSONObject(["model": .string(model), "messages": .array(history), "stream": true])
            body["tools"] = tools
            body["response_format"] = responseFormat
            return .object(body)
        case .chat:
            let messages: [JSON] = history.map { message in
                guard let parts = message["content"]?.arrayValue, var o = message.objectValue else { return message }
                let text = parts.compactMap { $0["type"]?.stringValue == "text" ? ($0["text"]?.stringValue ?? "") : nil }
                o["content"] = .string(text.joined(separator: " "))
                return .object(o)
            }
            return ["model": .string(model), "messages": .array(messages), "stream": true]
        }
    }

    /// The user turn as the history stores it.
    func userMessage(_ text: String) -> JSON {
        mode == .chat
            ? ["role": "user", "content": .string(text)]
            : ["role": "user", "content": [["type": "text", "text": .string(text)]]]
    }
}
