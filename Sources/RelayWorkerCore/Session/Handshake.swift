import RelayProtocol

/// A validated handshake: the first client frame, checked field by field so that a
/// wrong type is a clear error instead of a crash.
public struct Handshake: Sendable {
    /// The tool as sent (reported in `session_start`), and lower-cased for adapter lookup.
    public var toolAsSent: String
    public var tool: String
    public var folder: String
    public var model: String?
    public var sessionID: String
    public var workspaceID: JSON
    public var extraArgs: [String]
    public var env: [String: String]
    public var mcpConfig: JSON?
    public var claudeSessionID: String?
    /// The whole object, for adapter-specific keys (codex, cortex…).
    public var raw: JSONObject

    public struct Invalid: Error, Equatable {
        public let reason: String
    }

    /// Parses the first frame's text. Errors carry the reference's wording where it has one.
    public static func parse(_ text: String, newSessionID: () -> String) throws(Invalid) -> Handshake {
        let value: JSON
        do {
            value = try JSON.parse(text)
        } catch {
            throw Invalid(reason: "Invalid handshake: \(error.message)")
        }
        guard case .object(let o) = value else {
            throw Invalid(reason: "Invalid handshake: handshake must be a JSON object")
        }
        func string(_ key: String) throws(Invalid) -> String? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let s = v.stringValue else { throw Invalid(reason: "Invalid handshake: '\(key)' must be a string") }
            return s
        }
        let tool = try string("tool") ?? "claude"
        let folder = try string("folder") ?? "."
        guard !folder.utf8.contains(0) else { throw Invalid(reason: "Invalid handshake: 'folder' contains a NUL byte") }
        let model = try string("model")
        if let model, model.utf8.contains(0) { throw Invalid(reason: "Invalid handshake: 'model' contains a NUL byte") }

        var sessionID = newSessionID()
        if let v = o["session_id"], v.isTruthy {
            switch v {
            case .string(let s): sessionID = s
            case .int(let i): sessionID = String(i)
            default: throw Invalid(reason: "Invalid handshake: 'session_id' must be a string")
            }
            guard sessionID.utf8.count <= 256, !sessionID.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw Invalid(reason: "Invalid handshake: 'session_id' must be at most 256 printable characters")
            }
        }

        var extraArgs: [String] = []
        if let v = o["extra_args"], !v.isNull {
            guard let list = v.arrayValue else { throw Invalid(reason: "Invalid handshake: extra_args must be a list of strings") }
            for item in list {
                guard let arg = item.stringValue else { throw Invalid(reason: "Invalid handshake: extra_args must be a list of strings") }
                guard !arg.isEmpty, arg.utf8.allSatisfy(HandshakeRules.isArgCharacter) else {
                    throw Invalid(
                        reason: "Invalid handshake: extra_arg '\(arg)' contains disallowed characters. Only alphanumerics, hyphens, underscores, dots, equals, commas, at-signs, and colons are permitted."
                    )
                }
                extraArgs.append(arg)
            }
        }

        var env: [String: String] = [:]
        if let v = o["env"], !v.isNull {
            guard let object = v.objectValue else { throw Invalid(reason: "Invalid handshake: 'env' must be an object") }
            for (key, value) in object {
                let text: String
                switch value {
                case .string(let s): text = s
                case .int, .double, .bool: text = value.encodedString()
                default: throw Invalid(reason: "Invalid handshake: env value for '\(key)' must be a string")
                }
                if key.isEmpty || key.contains("=") || key.utf8.contains(0) || text.utf8.contains(0) {
                    throw Invalid(reason: "Invalid handshake: env key '\(key)' is not a valid variable")
                }
                env[key] = text
            }
        }

        var mcpConfig: JSON?
        if let v = o["mcp_config"], v.isTruthy {
            guard let object = v.objectValue else { throw Invalid(reason: "Invalid handshake: 'mcp_config' must be an object") }
            if object["mcpServers"]?.isTruthy == true { mcpConfig = v }
        }

        return Handshake(
            toolAsSent: tool,
            tool: tool.lowercased(),
            folder: folder,
            model: model,
            sessionID: sessionID,
            workspaceID: o["workspace_id"].truthy ?? .string(sessionID),
            extraArgs: extraArgs,
            env: env,
            mcpConfig: mcpConfig,
            claudeSessionID: try string("claude_session_id"),
            raw: o
        )
    }
}
