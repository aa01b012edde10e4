import RelayProtocol

/// One line a JSON-RPC child wrote, other than an answer to one of our calls (those are matched by
/// `JSONRPCChild` itself). `line` is the line as read, for `raw` and `stdout` events.
enum JSONRPCIncoming: Sendable {
    /// A request from the child: answer it with `JSONRPCChild.respond`.
    case request(id: JSON, method: String, params: JSON, message: JSON, line: [UInt8])
    case notification(method: String, params: JSON, message: JSON, line: [UInt8])
    /// A JSON object that is neither (codex: a stray event; ACP: a bare `update`, or anything else).
    case other(message: JSON, line: [UInt8])
    /// A line that is not a JSON object.
    case text([UInt8])
}

/// How one kind of child frames JSON-RPC on its stdio, and how its lines are told apart. Each case
/// reads lines the way the reference's client for that tool does, so hostile lines land where they
/// did there.
enum JSONRPCDialect: Sendable {
    /// codex app-server: JSON-RPC without the `jsonrpc` member.
    case codexAppServer
    /// Gemini's Agent Client Protocol: JSON-RPC 2.0.
    case acp

    /// What a parsed object is: an answer to one of our calls, or a message for the runtime.
    enum Reading {
        /// An answer; `key` is nil when its id cannot be one of ours (the answer is dropped).
        case answer(key: String?)
        case message(JSONRPCIncoming)
    }

    func request(id: Int64, method: String, params: JSON) -> JSON {
        switch self {
        case .codexAppServer: ["id": .int(id), "method": .string(method), "params": params]
        case .acp: ["jsonrpc": "2.0", "method": .string(method), "params": params, "id": .int(id)]
        }
    }

    /// A notification; `params` is left out when nil or null.
    func notification(method: String, params: JSON?) -> JSON {
        var line = envelope
        line["method"] = .string(method)
        if let params, !params.isNull { line["params"] = params }
        return .object(line)
    }

    func response(id: JSON, result: JSON) -> JSON {
        var line = envelope
        line["id"] = id
        line["result"] = result
        return .object(line)
    }

    func errorResponse(id: JSON, code: Int64, message: String) -> JSON {
        var line = envelope
        line["id"] = id
        line["error"] = ["code": .int(code), "message": .string(message)]
        return .object(line)
    }

    private var envelope: JSONObject {
        switch self {
        case .codexAppServer: JSONObject()
        case .acp: JSONObject(["jsonrpc": "2.0"])
        }
    }

    /// Sorts one JSON object the child wrote. Codex: an answer has a non-null id, no method and a
    /// `result` or `error`; a request has an id and a non-empty string method. ACP: anything with a
    /// `method` is a request (non-null id) or notification, else an object with an `id` and no
    /// `update` is an answer.
    func read(_ message: JSON, line: [UInt8]) -> Reading {
        let object = message.objectValue ?? JSONObject()
        switch self {
        case .codexAppServer:
            let method = message["method"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            let id = message["id"].nonNull
            let params = message["params"].truthy ?? .object(JSONObject())
            if let id, method == nil, object.has("result") || object.has("error") {
                return .answer(key: id.idKey)
            }
            if let id, let method {
                return .message(.request(id: id, method: method, params: params, message: message, line: line))
            }
            if let method {
                return .message(.notification(method: method, params: params, message: message, line: line))
            }
            return .message(.other(message: message, line: line))
        case .acp:
            if object.has("method") {
                let method = message["method"]?.stringValue ?? ""
                let params = message["params"] ?? .object(JSONObject())
                if let id = message["id"].nonNull {
                    return .message(.request(id: id, method: method, params: params, message: message, line: line))
                }
                return .message(.notification(method: method, params: params, message: message, line: line))
            }
            if !object.has("update"), let id = message["id"] {
                return .answer(key: id.idKey)
            }
            return .message(.other(message: message, line: line))
        }
    }
}
