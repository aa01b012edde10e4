import Logging

extension LabConfig {
    /// Tools the worker knows; `LAB_ALLOWED_TOOLS` may only name these.
    public static let knownTools: Set<String> = ["claude", "claude-code", "codex", "gemini", "kimi", "cortex", "generic"]

    /// Every variable this controller reads, for `--help`, `--print-config` and the unknown-name warning.
    public static let variables: [(name: String, help: String)] = [
        ("LAB_MODE", "single | multi (default single)"),
        ("LAB_WORKSPACE_ROOT", "absolute host path holding <root>/<user_id> (default /var/ohwise-lab-workspaces)"),
        ("LAB_IMAGE", "image of user containers (default ohwise-lab-ctrl:local)"),
        ("LAB_NETWORK", "Docker network of user containers; 'host' = host networking, one port per worker (default lab-network)"),
        ("LAB_CONTAINER_PORT", "port of the worker inside a container (default 9000)"),
        ("LAB_CONTAINER_USER", "OS user inside user containers (default labuser)"),
        ("LAB_CONTAINER_HOME", "home inside user containers, where the workspace is mounted (default /home/<user>)"),
        ("LAB_CONTAINER_STARTUP_DELAY", "seconds without readiness before clients get lab.waiting progress (default 1.5)"),
        ("LAB_CONTAINER_WS_TIMEOUT", "seconds to wait for the worker to answer (default 15)"),
        ("LAB_IDLE_TIMEOUT_SECS", "inactivity after which a worker is reaped (default 1800)"),
        ("LAB_SESSION_GRACE_SECS", "how long a session with no client attached lives on in its worker; 0 = it ends with its socket (default 3600)"),
        ("LAB_HOST", "listen address (default 127.0.0.1)"),
        ("LAB_PORT", "listen port, 0 = any free port (default 8080)"),
        ("LAB_JWT_SECRET", "HS256 secret, at least 32 bytes (secret)"),
        ("LAB_JWT_PUBLIC_KEY_FILE", "PEM public key for RS256 or ES256 tokens"),
        ("LAB_JWT_ISSUER", "required iss claim"),
        ("LAB_JWT_AUDIENCE", "required aud claim"),
        ("LAB_TOKENS_FILE", "operator token file, lines '<user_id> <token>'"),
        ("LAB_ADMIN_TOKEN", "bearer token of the admin API /v1/workers (secret; admin API off when unset)"),
        ("LAB_SINGLE_SHARED_ACCOUNT", "true: single mode may serve several users, who then share one OS account (default false)"),
        ("LAB_LOCAL_USER", "user id of the generated token in single mode (default local)"),
        ("LAB_WORKER_ENV_FILE", "KEY=VALUE lines given to every worker (provider credentials, base URLs)"),
        ("LAB_WORKER_BINARY", "single mode worker executable (default relay-worker beside labctrl)"),
        ("LAB_MAX_WORKERS", "cap on workers, 0 = none (default 100)"),
        ("LAB_CONTAINER_MEMORY", "memory limit per container, e.g. 2g, 512m; 0 or none = no limit (default 2g)"),
        ("LAB_CONTAINER_CPUS", "CPU limit per container, e.g. 1.5, capped at the engine's CPU count; 0 or none = no limit (default 2)"),
        ("LAB_CONTAINER_READ_ONLY", "read-only root file system in user containers, tmpfs /tmp (default true)"),
        ("LAB_CONTAINER_TMP_SIZE", "size of the tmpfs /tmp of read-only containers, e.g. 512m (default 512m)"),
        ("LAB_CONTAINER_PIDS_LIMIT", "process limit per container, 0 = none (default 512)"),
        ("LAB_CONTAINER_UID", "owner uid of new workspace folders in multi mode (default 1000)"),
        ("LAB_CONTAINER_GID", "owner gid of new workspace folders in multi mode (default 1000)"),
        ("LAB_WORKER_STOP_GRACE_SECS", "SIGTERM to SIGKILL grace when a worker stops (default 5)"),
        ("LAB_CONTROLLER_ID", "controller id written into container labels (default host name)"),
        ("LAB_DEPLOYMENT", "lab.deployment label and container-name prefix, [a-z0-9-] up to 20 characters; labs sharing an engine need different ones, replicas of one lab the same (default derived from LAB_CONTROLLER_ID)"),
        ("LAB_DOCKER_HOST", "Docker engine (unix:///path or tcp://host:port); default DOCKER_HOST"),
        ("LAB_REAPER_INTERVAL_SECS", "seconds between reaper passes (default 30)"),
        ("LAB_IDLE_WARNING_SECS", "lead time of lab.idle_warning before a reap (default 60)"),
        ("LAB_MAX_TURN_SECS", "hard cap on a turn or pending permission (default 7200)"),
        ("LAB_ALLOWED_TOOLS", "comma list of handshake tools (default claude,claude-code,codex,gemini,kimi)"),
        ("LAB_ALLOWED_ENV", "comma list of extra handshake env keys to allow"),
        ("LAB_ALLOW_MCP_CONFIG", "allow mcp_config in handshakes (default false)"),
        ("LAB_ALLOW_CORTEX_CREDENTIALS", "allow Cortex token/token_env/account_url in handshakes (default false)"),
        ("LAB_MAX_FRAME_BYTES", "largest WebSocket frame either way (default 52428800)"),
        ("LAB_WS_PING_SECS", "WebSocket ping period toward clients and workers, 0 = off (default 20)"),
        ("LAB_HANDSHAKE_TIMEOUT_SECS", "time a client has to send its first frame (default 10)"),
        ("LAB_MAX_HANDSHAKE_BYTES", "largest first client message (handshake); over it: error event, close 1009 (default 262144)"),
        ("LAB_MAX_CONNECTIONS_PER_USER", "open client WebSockets per user, 0 = no cap; over it: HTTP 429 (default 32)"),
        ("LAB_MAX_CONNECTIONS", "open client WebSockets in all, 0 = no cap; over it: HTTP 429 (default 4096)"),
        ("LAB_MAX_PENDING_CONNECTIONS", "connections that have not sent a request head yet, 0 = no cap; past it new ones are closed at once (default 256)"),
        ("LAB_HTTP_IDLE_TIMEOUT_SECS", "seconds a connection may take to send a request head, and idle keep-alive bound (default 30)"),
        ("LAB_ALLOWED_ORIGINS", "comma list of browser Origins allowed on /ws besides the controller's own"),
        ("LAB_TOKENS_RELOAD_SECS", "period of the tokens-file reload and of re-checking open sockets' credentials (default 10)"),
        ("LAB_LOG_FORMAT", "text | json (default text)"),
        ("LAB_LOG_LEVEL", "trace | debug | info | notice | warning | error | critical (default info)"),
        ("LAB_SHUTDOWN_GRACE_SECS", "bound on graceful shutdown after SIGTERM (default 10)"),
    ]

    /// Parses `environment` (normally the process environment). Empty values count as unset.
    /// Throws ``ConfigError`` naming the first bad variable.
    public static func fromEnvironment(_ environment: [String: String]) throws(ConfigError) -> LabConfig {
        let env = EnvReader(environment)
        var c = LabConfig()
        c.mode = try env.choice("LAB_MODE", default: .single)
        c.workspaceRoot = try env.absolutePath("LAB_WORKSPACE_ROOT", default: c.workspaceRoot)
        c.image = env.string("LAB_IMAGE") ?? c.image
        c.network = env.string("LAB_NETWORK") ?? c.network
        c.containerPort = try env.int("LAB_CONTAINER_PORT", default: c.containerPort, range: 1...65535)
        c.containerUser = env.string("LAB_CONTAINER_USER") ?? c.containerUser
        c.containerHome = try env.absolutePath("LAB_CONTAINER_HOME", default: "/home/\(c.containerUser)")
        c.containerStartupDelay = try env.seconds("LAB_CONTAINER_STARTUP_DELAY", default: c.containerStartupDelay)
        c.containerWSTimeout = try env.seconds("LAB_CONTAINER_WS_TIMEOUT", default: c.containerWSTimeout, positive: true)
        c.idleTimeout = try env.seconds("LAB_IDLE_TIMEOUT_SECS", default: c.idleTimeout, positive: true)
        c.sessionGrace = try env.seconds("LAB_SESSION_GRACE_SECS", default: c.sessionGrace)

        c.host = env.string("LAB_HOST") ?? c.host
        c.port = try env.int("LAB_PORT", default: c.port, range: 0...65535)

        c.jwtSecret = env.string("LAB_JWT_SECRET")
        if let s = c.jwtSecret, s.utf8.count < 32 {
            throw ConfigError(variable: "LAB_JWT_SECRET", value: nil, expected: "at least 32 bytes (got \(s.utf8.count))")
        }
        c.jwtPublicKeyFile = try env.optionalAbsolutePath("LAB_JWT_PUBLIC_KEY_FILE")
        if c.jwtSecret != nil, c.jwtPublicKeyFile != nil {
            throw ConfigError(
                variable: "LAB_JWT_PUBLIC_KEY_FILE", value: c.jwtPublicKeyFile,
                expected: "either LAB_JWT_SECRET or LAB_JWT_PUBLIC_KEY_FILE, not both")
        }
        c.jwtIssuer = env.string("LAB_JWT_ISSUER")
        c.jwtAudience = env.string("LAB_JWT_AUDIENCE")
        c.tokensFile = try env.optionalAbsolutePath("LAB_TOKENS_FILE")
        c.adminToken = env.string("LAB_ADMIN_TOKEN")
        if let t = c.adminToken, t.utf8.count < 16 {
            throw ConfigError(variable: "LAB_ADMIN_TOKEN", value: nil, expected: "at least 16 characters (got \(t.utf8.count))")
        }
        c.localUser = env.string("LAB_LOCAL_USER") ?? c.localUser
        c.singleSharedAccount = try env.bool("LAB_SINGLE_SHARED_ACCOUNT", default: false)
        if UserID(c.localUser) == nil {
            throw ConfigError(variable: "LAB_LOCAL_USER", value: c.localUser, expected: UserID.rule)
        }

        c.workerEnvFile = try env.optionalAbsolutePath("LAB_WORKER_ENV_FILE")
        c.workerBinary = env.string("LAB_WORKER_BINARY")
        c.maxWorkers = try env.int("LAB_MAX_WORKERS", default: c.maxWorkers, range: 0...1_000_000)
        if env.isOff("LAB_CONTAINER_MEMORY") {
            c.containerMemoryBytes = nil
        } else if let m = try env.byteSize("LAB_CONTAINER_MEMORY") {
            c.containerMemoryBytes = m
        }
        if env.isOff("LAB_CONTAINER_CPUS") {
            c.containerCPUs = nil
        } else if let cpus = try env.optionalDouble("LAB_CONTAINER_CPUS", positive: true) {
            c.containerCPUs = cpus
        }
        c.containerReadOnly = try env.bool("LAB_CONTAINER_READ_ONLY", default: c.containerReadOnly)
        c.containerTmpBytes = try env.byteSize("LAB_CONTAINER_TMP_SIZE") ?? c.containerTmpBytes
        let pids = try env.int("LAB_CONTAINER_PIDS_LIMIT", default: 512, range: 0...4_194_304)
        c.containerPidsLimit = pids == 0 ? nil : Int64(pids)
        c.containerUID = UInt32(try env.int("LAB_CONTAINER_UID", default: 1000, range: 0...Int(Int32.max)))
        c.containerGID = UInt32(try env.int("LAB_CONTAINER_GID", default: 1000, range: 0...Int(Int32.max)))
        c.workerStopGrace = try env.seconds("LAB_WORKER_STOP_GRACE_SECS", default: c.workerStopGrace)
        c.controllerID = env.string("LAB_CONTROLLER_ID") ?? (environment["HOSTNAME"].flatMap { $0.isEmpty ? nil : $0 } ?? hostName())
        if let d = env.string("LAB_DEPLOYMENT") {
            guard Deployment.isValid(d) else { throw ConfigError(variable: "LAB_DEPLOYMENT", value: d, expected: Deployment.rule) }
            c.deployment = d
        } else {
            c.deployment = Deployment.derived(fromControllerID: c.controllerID)
        }
        c.dockerHost = env.string("LAB_DOCKER_HOST") ?? env.string("DOCKER_HOST")
        if let h = c.dockerHost, !(h.hasPrefix("unix://") || h.hasPrefix("tcp://")) {
            throw ConfigError(variable: env.has("LAB_DOCKER_HOST") ? "LAB_DOCKER_HOST" : "DOCKER_HOST", value: h, expected: "unix:///path or tcp://host:port")
        }

        c.reaperInterval = try env.seconds("LAB_REAPER_INTERVAL_SECS", default: c.reaperInterval, positive: true)
        c.idleWarning = try env.seconds("LAB_IDLE_WARNING_SECS", default: c.idleWarning)
        c.maxTurn = try env.seconds("LAB_MAX_TURN_SECS", default: c.maxTurn, positive: true)

        if let tools = env.list("LAB_ALLOWED_TOOLS") {
            let lowered = tools.map { $0.lowercased() }
            if let bad = lowered.first(where: { !knownTools.contains($0) }) {
                throw ConfigError(
                    variable: "LAB_ALLOWED_TOOLS", value: environment["LAB_ALLOWED_TOOLS"],
                    expected: "a comma list of \(knownTools.sorted().joined(separator: ", ")) (unknown '\(bad)')")
            }
            c.allowedTools = lowered
        }
        c.allowedEnv = env.list("LAB_ALLOWED_ENV") ?? []
        if let bad = c.allowedEnv.first(where: { !isEnvName($0) }) {
            throw ConfigError(variable: "LAB_ALLOWED_ENV", value: environment["LAB_ALLOWED_ENV"], expected: "environment variable names ('\(bad)' is not one)")
        }
        c.allowMCPConfig = try env.bool("LAB_ALLOW_MCP_CONFIG", default: false)
        c.allowCortexCredentials = try env.bool("LAB_ALLOW_CORTEX_CREDENTIALS", default: false)

        c.maxFrameBytes = try env.int("LAB_MAX_FRAME_BYTES", default: c.maxFrameBytes, range: 1024...(1 << 30))
        c.pingInterval = try env.seconds("LAB_WS_PING_SECS", default: c.pingInterval)
        c.handshakeTimeout = try env.seconds("LAB_HANDSHAKE_TIMEOUT_SECS", default: c.handshakeTimeout, positive: true)
        c.maxHandshakeBytes = try env.int("LAB_MAX_HANDSHAKE_BYTES", default: c.maxHandshakeBytes, range: 1024...(64 << 20))
        c.maxConnectionsPerUser = try env.int("LAB_MAX_CONNECTIONS_PER_USER", default: c.maxConnectionsPerUser, range: 0...1_000_000)
        c.maxConnections = try env.int("LAB_MAX_CONNECTIONS", default: c.maxConnections, range: 0...1_000_000)
        c.httpIdleTimeout = try env.seconds("LAB_HTTP_IDLE_TIMEOUT_SECS", default: c.httpIdleTimeout, positive: true)
        c.maxPendingConnections = try env.int("LAB_MAX_PENDING_CONNECTIONS", default: c.maxPendingConnections, range: 0...1_000_000)
        c.allowedOrigins = env.list("LAB_ALLOWED_ORIGINS") ?? []
        if let bad = c.allowedOrigins.first(where: { OriginPolicy.normalize($0) == nil }) {
            throw ConfigError(variable: "LAB_ALLOWED_ORIGINS", value: bad, expected: "origins such as https://lab.example.com or http://127.0.0.1:8080")
        }
        c.tokensReload = try env.seconds("LAB_TOKENS_RELOAD_SECS", default: c.tokensReload, positive: true)

        c.logFormat = try env.choice("LAB_LOG_FORMAT", default: .text)
        if let level = env.string("LAB_LOG_LEVEL") {
            guard let l = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigError(variable: "LAB_LOG_LEVEL", value: level, expected: "trace, debug, info, notice, warning, error or critical")
            }
            c.logLevel = l
        }
        c.shutdownGrace = try env.seconds("LAB_SHUTDOWN_GRACE_SECS", default: c.shutdownGrace)
        return c
    }

    /// `LAB_*` names in `environment` that this controller does not know (likely typos).
    public static func unknownVariables(in environment: [String: String]) -> [String] {
        let known = Set(variables.map(\.name))
        return environment.keys.filter { $0.hasPrefix("LAB_") && !known.contains($0) && !ignoredLabVariables.contains($0) }.sorted()
    }

    /// `LAB_*` names used by scripts and tests around the controller, not by it.
    static let ignoredLabVariables: Set<String> = ["LAB_CACHE", "LAB_VENV", "LAB_PYTHON", "LAB_BASE_IMAGE"]

    static func isEnvName(_ s: String) -> Bool {
        guard let first = s.utf8.first, first == UInt8(ascii: "_") || (first | 0x20) >= UInt8(ascii: "a") && (first | 0x20) <= UInt8(ascii: "z")
        else { return false }
        return s.utf8.allSatisfy { c in
            c == UInt8(ascii: "_") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || ((c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z"))
        }
    }
}

/// Typed access to environment variables with errors that name the variable.
struct EnvReader {
    let values: [String: String]
    init(_ values: [String: String]) { self.values = values }

    func has(_ name: String) -> Bool { string(name) != nil }

    func string(_ name: String) -> String? {
        guard let v = values[name]?.trimmingWhitespace(), !v.isEmpty else { return nil }
        return v
    }

    func list(_ name: String) -> [String]? {
        guard let v = string(name) else { return nil }
        return v.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ name: String, default d: T) throws(ConfigError) -> T where T.RawValue == String {
        guard let v = string(name) else { return d }
        guard let x = T(rawValue: v.lowercased()) else {
            throw ConfigError(variable: name, value: v, expected: T.allCases.map(\.rawValue).joined(separator: " or "))
        }
        return x
    }

    func int(_ name: String, default d: Int, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let v = string(name) else { return d }
        guard let x = Int(v), range.contains(x) else {
            throw ConfigError(variable: name, value: v, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return x
    }

    /// At most ten years: every duration becomes nanoseconds in an Int64 somewhere (≈ 292 years), so a
    /// larger value would trap instead of being refused.
    static let maxSeconds = 315_360_000.0
    /// Upper bound of plain numbers (CPUs and the like), for the same reason.
    static let maxNumber = 1_000_000.0

    func seconds(_ name: String, default d: Double, positive: Bool = false) throws(ConfigError) -> Double {
        guard let v = string(name) else { return d }
        guard let x = Double(v), x.isFinite, positive ? x > 0 : x >= 0, x <= Self.maxSeconds else {
            throw ConfigError(
                variable: name, value: v,
                expected: (positive ? "a number of seconds > 0" : "a number of seconds >= 0") + " and <= \(Int(Self.maxSeconds))")
        }
        return x
    }

    func optionalDouble(_ name: String, positive: Bool) throws(ConfigError) -> Double? {
        guard let v = string(name) else { return nil }
        guard let x = Double(v), x.isFinite, positive ? x > 0 : x >= 0, x <= Self.maxNumber else {
            throw ConfigError(variable: name, value: v, expected: (positive ? "a number > 0" : "a number >= 0") + " and <= 1000000")
        }
        return x
    }

    /// `0` or `none`: a limit switched off.
    func isOff(_ name: String) -> Bool {
        guard let v = string(name)?.lowercased() else { return false }
        return v == "none" || Double(v) == 0
    }

    func bool(_ name: String, default d: Bool) throws(ConfigError) -> Bool {
        guard let v = string(name) else { return d }
        switch v.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigError(variable: name, value: v, expected: "true or false")
        }
    }

    func absolutePath(_ name: String, default d: String) throws(ConfigError) -> String {
        try optionalAbsolutePath(name) ?? d
    }

    func optionalAbsolutePath(_ name: String) throws(ConfigError) -> String? {
        guard let v = string(name) else { return nil }
        guard v.hasPrefix("/") else { throw ConfigError(variable: name, value: v, expected: "an absolute path") }
        var p = v
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// Docker-style sizes: `1073741824`, `512m`, `2g`, `1.5g` (binary units b, k, m, g).
    func byteSize(_ name: String) throws(ConfigError) -> Int64? {
        guard let v = string(name) else { return nil }
        let s = v.lowercased()
        var number = Substring(s)
        var unit: Double = 1
        if let last = s.last, last.isLetter {
            number = s.dropLast()
            switch last {
            case "b": unit = 1
            case "k": unit = 1024
            case "m": unit = 1024 * 1024
            case "g": unit = 1024 * 1024 * 1024
            default: number = ""
            }
        }
        // Up to 1 PiB: far beyond any machine, far below Int64's range.
        guard let x = Double(number), x.isFinite, x > 0, x * unit >= 6 * 1024 * 1024, x * unit <= 1_125_899_906_842_624,
            let bytes = Int64(exactly: (x * unit).rounded(.down))
        else {
            throw ConfigError(variable: name, value: v, expected: "a size such as 512m or 2g (at least 6m, at most 1024t)")
        }
        return bytes
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

func hostName() -> String {
    var buf = [CChar](repeating: 0, count: 256)
    guard gethostname(&buf, buf.count - 1) == 0 else { return "labctrl" }
    let name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "labctrl" : name
}
