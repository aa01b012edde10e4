import RelayProtocol

/// Reads the client's first frame and rewrites it before it reaches the worker.
///
/// - `folder` is resolved inside the user's home (``FolderResolver``) and replaced by the absolute
///   path in the worker's view;
/// - `tool` must be on `LAB_ALLOWED_TOOLS`;
/// - `env` and `extra_args` pass the same rules the worker applies (mirrored here so a refusal
///   happens before any worker is started);
/// - `mcp_config` and Cortex credentials (`token`, `token_env`, `account_url`) are refused unless
///   the operator allows them.
///
/// Identity never comes from here: fields such as `user_id` or `workspace_id` are passed on
/// untouched but mean nothing to routing, which uses the verified credential only.
public struct HandshakeFirewall: Sendable {
    public var allowedTools: Set<String>
    public var allowedEnv: Set<String>
    public var allowMCPConfig: Bool
    public var allowCortexCredentials: Bool

    public init(allowedTools: Set<String>, allowedEnv: Set<String>, allowMCPConfig: Bool, allowCortexCredentials: Bool) {
        self.allowedTools = allowedTools
        self.allowedEnv = allowedEnv
        self.allowMCPConfig = allowMCPConfig
        self.allowCortexCredentials = allowCortexCredentials
    }

    public init(_ config: LabConfig) {
        self.init(
            allowedTools: Set(config.allowedTools), allowedEnv: Set(config.allowedEnv), allowMCPConfig: config.allowMCPConfig,
            allowCortexCredentials: config.allowCortexCredentials)
    }

    /// A refusal: the `error` event text and the field at fault (metrics label).
    public struct Refusal: Error, Equatable, Sendable {
        public var text: String
        public var field: String
        /// The handshake's `session_id` when it could be read (errors echo it, as the worker does for
        /// preflight failures).
        public var sessionID: String
    }

    /// The accepted handshake, ready to forward.
    public struct Accepted: Sendable {
        public var object: JSONObject
        public var tool: String
        public var sessionID: String
        public var folder: String
        public var encoded: [UInt8] { JSON.object(object).encoded() }
    }

    /// Checks and rewrites the handshake `text`.
    public func inspect(_ text: [UInt8], folders: FolderResolver) -> Result<Accepted, Refusal> {
        func refuse(_ t: String, _ field: String, _ sid: String = "") -> Result<Accepted, Refusal> {
            .failure(Refusal(text: t, field: field, sessionID: sid))
        }
        let value: JSON
        do {
            value = try JSON.parse(text)
        } catch {
            return refuse("Invalid handshake: \(error.message)", "json")
        }
        guard var o = value.objectValue else { return refuse("Invalid handshake: handshake must be a JSON object", "json") }
        if let id = o["attach"] { return Self.attach(id, after: o["after_seq"]) }
        let sid: String
        switch o["session_id"] {
        case .string(let s)?: sid = s
        case .int(let i)?: sid = String(i)
        default: sid = ""
        }

        // tool
        var tool = "claude"
        if let t = o["tool"], !t.isNull {
            guard let s = t.stringValue else { return refuse("Invalid handshake: 'tool' must be a string", "tool") }
            tool = s.lowercased()
        }
        guard allowedTools.contains(tool) else {
            return refuse("Invalid handshake: tool '\(tool)' is not allowed on this lab", "tool")
        }

        // folder
        var folderValue: String?
        if let f = o["folder"], !f.isNull {
            guard let s = f.stringValue else { return refuse("Invalid handshake: 'folder' must be a string", "folder") }
            folderValue = s
        }
        let folder: String
        switch folders.resolve(folderValue) {
        case .success(let path): folder = path
        case .failure:
            return refuse(
                "Folder '\(folderValue ?? "")' is outside the permitted workspace root '\(folders.workerHome)'.", "folder", sid)
        }
        o["folder"] = .string(folder)

        // env
        if let e = o["env"], !e.isNull {
            guard let env = e.objectValue else { return refuse("Invalid handshake: 'env' must be an object", "env") }
            for (key, v) in env {
                switch v {
                case .string, .int, .double, .bool: break
                default: return refuse("Invalid handshake: env value of '\(key)' must be a string, number or boolean", "env")
                }
                if let why = HandshakeRules.envRefusal(for: key, operatorAllowed: allowedEnv) { return refuse("Invalid handshake: \(why)", "env") }
            }
        }

        // extra_args
        if let a = o["extra_args"], !a.isNull {
            guard let list = a.arrayValue else { return refuse("Invalid handshake: extra_args must be a list of strings", "extra_args") }
            var args: [String] = []
            for item in list {
                guard let s = item.stringValue else { return refuse("Invalid handshake: extra_args must be a list of strings", "extra_args") }
                guard !s.isEmpty, s.utf8.allSatisfy(HandshakeRules.isArgCharacter) else {
                    return refuse(
                        "Invalid handshake: extra_arg '\(s)' contains disallowed characters. Only alphanumerics, hyphens, underscores, dots, equals, commas, at-signs, and colons are permitted.",
                        "extra_args")
                }
                args.append(s)
            }
            if let bad = HandshakeRules.refusedArgument(args, allowed: Self.allowedFlags(for: tool)) {
                return refuse("Invalid handshake: extra_arg '\(bad)' is not allowed for \(tool)", "extra_args")
            }
        }

        // mcp_config
        if let m = o["mcp_config"], !m.isNull, !allowMCPConfig {
            return refuse("Invalid handshake: mcp_config is not allowed on this lab", "mcp_config")
        }

        // Cortex credentials: secrets never come from the browser unless the operator says so.
        if tool == "cortex", !allowCortexCredentials {
            let snowflake = o["snowflake"]?.objectValue
            for key in ["token", "token_env", "account_url"] {
                let top = o[key].map { !$0.isNull } ?? false
                let nested = snowflake?[key].map { !$0.isNull } ?? false
                if top || nested {
                    return refuse("Invalid handshake: Cortex '\(key)' is not allowed on this lab; the operator configures Snowflake", "cortex")
                }
            }
        }
        return .success(Accepted(object: o, tool: tool, sessionID: sid, folder: folder))
    }

    // ---- the worker's rules (RelayProtocol.HandshakeRules), so both layers agree ----

    /// `extra_args` flags per tool; nil = any flag passing the character check (PTY tools).
    /// An attach frame (docs/protocol.md §7): its shape is checked here, its id by the worker (which
    /// only knows its own user's sessions). Only `attach` and `after_seq` are passed on.
    static func attach(_ id: JSON, after: JSON?) -> Result<Accepted, Refusal> {
        guard let sid = id.stringValue, !sid.isEmpty, sid.utf8.count <= 256,
            !sid.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else {
            return .failure(
                Refusal(text: "Invalid attach: 'attach' must be a session id (a string of 1 to 256 printable characters)", field: "attach", sessionID: ""))
        }
        var object = JSONObject()
        object["attach"] = .string(sid)
        if let after, !after.isNull {
            guard case .int(let n) = after, n >= 0, n <= Int64(Int32.max) else {
                return .failure(
                    Refusal(text: "Invalid attach: 'after_seq' must be a whole number from 0 to \(Int32.max)", field: "attach", sessionID: sid))
            }
            object["after_seq"] = .int(n)
        }
        return .success(Accepted(object: object, tool: "attach", sessionID: sid, folder: ""))
    }

    static func allowedFlags(for tool: String) -> Set<String>? {
        switch tool {
        case "claude", "claude-code", "kimi": HandshakeRules.claudeFlags
        case "generic": nil
        default: []
        }
    }
}
