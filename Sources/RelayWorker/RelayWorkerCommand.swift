import ChildProcess
import ArgumentParser
import Hummingbird
import Logging
import RelayWorkerCore

#if canImport(Glibc)
import Glibc
#endif

/// Options shared by `relay-worker serve` and the bare `relay-worker` form.
struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on (default 0.0.0.0 with a token, else 127.0.0.1).") var host: String?
    @Option(help: "File holding the token clients must send as `Authorization: Bearer` (or set RELAY_WORKER_TOKEN).")
    var tokenFile: String?
    @Flag(help: "Read the token from the first line of stdin (how labctrl hands it over; nothing else reads it).")
    var tokenStdin = false
    @Flag(help: "Stop when stdin ends (labctrl holds it open for the worker's life, so its death ends the worker).")
    var exitWithStdin = false
    @Flag(help: "Serve without a token on a non-loopback address (an authenticating proxy stands in front).")
    var insecureNoToken = false
    @Option(help: "Allow WebSocket upgrades from this exact Origin, scheme://host[:port] (repeatable; others get 403).")
    var allowedOrigin: [String] = []
    @Option(help: "Port to listen on (default 9000 for serve, 8765 for the bare form).") var port: Int?
    @Option(help: "Confine session folders to this directory (symlinks resolved).") var workspaceRoot: String?
    @Option(help: "DEBUG, INFO, WARNING or ERROR.") var logLevel = "INFO"
    @Option(help: "Allow the client to set this env key (repeatable).") var allowEnv: [String] = []
    @Flag(help: "Allow clients to pass an mcp_config (MCP servers run arbitrary commands).") var allowMcpConfig = false
    @Flag(help: "Allow clients to trigger `claude install`.") var allowClaudeUpdate = false
    @Option(help: "Serve another CLI in a PTY: NAME=EXECUTABLE (repeatable).") var ptyTool: [String] = []
    @Option(help: "Seconds a session with no client attached lives on (0: it ends with its last socket, as in ai-relay).")
    var detachGrace = 0
    @Option(help: "The detach grace never ends a session mid-turn; a turn longer than this many seconds no longer holds it.")
    var maxTurnSecs = 3600
    @Option(help: "Folder for the sessions' event logs (each session a folder of its own; read back on start).")
    var stateDir: String?
    @Option(help: "Disconnect a client whose pending send makes no progress for this many seconds.") var sendTimeout = 30
    @Option(help: "Largest handshake (first message) in bytes; larger ones are refused with close 1009.")
    var maxHandshakeBytes = 256 * 1024
    @Option(help: "codex: seconds to wait for any app-server answer (initialize, turn/start, turn/interrupt…).")
    var codexRpcTimeout = 60
    @Flag(help: "codex: allow clients to pass a thread `config`/`modelProvider` and to send `raw_request`.")
    var allowCodexConfig = false
    @Flag(help: "codex: allow clients to ask for the danger-full-access sandbox.") var allowCodexFullAccess = false
    @Option(help: "cortex: https host pattern an account_url may name (repeatable; replaces *.snowflakecomputing.com).")
    var cortexAllowedHost: [String] = []
    @Option(help: "cortex: exact origin scheme://host:port also allowed, http included (repeatable; test servers).")
    var cortexAllowedOrigin: [String] = []
    @Option(help: "cortex: worker env variable a token_env may name (repeatable; replaces SNOWFLAKE_PAT).")
    var cortexTokenEnv: [String] = []
    @Option(help: "Claude OAuth refresh endpoint (auth helper).") var claudeOauthTokenUrl: String?
    @Option(help: "Gemini OAuth refresh endpoint (auth helper).") var geminiOauthTokenUrl: String?

    func run(defaultPort: Int) async throws {
        let level: Logger.Level
        switch logLevel.uppercased() {
        case "DEBUG": level = .debug
        case "INFO": level = .info
        case "WARNING", "WARN": level = .warning
        case "ERROR": level = .error
        default: throw ValidationError("--log-level must be DEBUG, INFO, WARNING or ERROR")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        // Before anything else: the token leaves the environment (and the agents' inherited one), and
        // the process becomes non-dumpable so agents of the same OS user cannot read it back.
        ProcessHardening.makeNonDumpable()
        let lifeline = exitWithStdin ? try ParentLifeline.takeStdin() : nil
        let token = try WorkerTokenSource.load(
            file: tokenFile, stdin: tokenStdin, environmentVariable: WorkerTokenSource.environmentVariable)
        var environment = ChildSpec.currentEnvironment()
        environment[WorkerTokenSource.environmentVariable] = nil
        var options = WorkerOptions(baseEnvironment: environment)
        options.accessToken = token
        options.allowedOrigins = allowedOrigin
        options.host = try WorkerTokenSource.listenHost(requested: host, hasToken: token != nil, insecureNoToken: insecureNoToken)
        options.port = port ?? defaultPort
        if let workspaceRoot {
            guard let real = WorkspacePolicy.realPath(workspaceRoot) else {
                throw ValidationError("--workspace-root \(workspaceRoot) does not exist")
            }
            options.workspaceRoot = real
        }
        guard (0...(30 * 86_400)).contains(detachGrace) else { throw ValidationError("--detach-grace must be 0...2592000 seconds") }
        options.detachGrace = .seconds(detachGrace)
        guard (1...(7 * 86_400)).contains(maxTurnSecs) else { throw ValidationError("--max-turn-secs must be 1...604800 seconds") }
        options.maxTurn = .seconds(maxTurnSecs)
        if let stateDir {
            // Created with its parents (labctrl names a folder inside the workspace).
            var path = stateDir.hasPrefix("/") ? "" : "."
            for part in stateDir.split(separator: "/") {
                path += "/" + part
                if mkdir(path, 0o700) != 0, errno != EEXIST { throw ValidationError("--state-dir \(stateDir): cannot create \(path) (errno \(errno))") }
            }
            guard let real = WorkspacePolicy.realPath(stateDir) else { throw ValidationError("--state-dir \(stateDir) does not exist") }
            options.stateDir = real
        }
        options.allowedEnv = Set(allowEnv)
        options.allowMCPConfig = allowMcpConfig
        options.allowClaudeUpdate = allowClaudeUpdate
        guard (1...86_400).contains(sendTimeout) else { throw ValidationError("--send-timeout must be 1...86400 seconds") }
        options.sendTimeout = .seconds(sendTimeout)
        guard (1024...(50 << 20)).contains(maxHandshakeBytes) else {
            throw ValidationError("--max-handshake-bytes must be 1024...52428800")
        }
        options.maxHandshakeBytes = maxHandshakeBytes
        options.codexRPCTimeout = .seconds(max(1, codexRpcTimeout))
        options.allowCodexConfig = allowCodexConfig
        options.allowCodexFullAccess = allowCodexFullAccess
        if !cortexAllowedHost.isEmpty { options.cortexAllowedHosts = cortexAllowedHost }
        for origin in cortexAllowedOrigin {
            guard let normalized = CortexEndpointPolicy.normalizedOrigin(origin) else {
                throw ValidationError("--cortex-allowed-origin takes scheme://host[:port], got '\(origin)'")
            }
            options.cortexAllowedOrigins.append(normalized)
        }
        if !cortexTokenEnv.isEmpty { options.cortexTokenEnvs = Set(cortexTokenEnv) }
        if let claudeOauthTokenUrl { options.claudeOAuthTokenURL = claudeOauthTokenUrl }
        if let geminiOauthTokenUrl { options.geminiOAuthTokenURL = geminiOauthTokenUrl }
        for entry in ptyTool {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--pty-tool takes NAME=EXECUTABLE, got '\(entry)'")
            }
            options.ptyTools[parts[0]] = parts[1]
        }
        let logger = Logger(label: "relay-worker")
        if let lifeline { try await ParentLifeline.watch(lifeline, logger: logger) }
        let host = options.host
        try await runWorker(options: options, logger: logger) { port in
            logger.info("relay-worker listening", metadata: [
                "address": "ws://\(host):\(port)", "token": "\(token == nil ? "none" : "required")",
            ])
        }
    }
}

@main
struct RelayWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-worker",
        abstract: "WebSocket relay between clients and AI coding-agent CLIs (ai-relay 0.4.46 compatible).",
        subcommands: [Serve.self]
    )

    @OptionGroup var options: ServerOptions

    func run() async throws { try await options.run(defaultPort: 8765) }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the relay server (for containers).")
        @OptionGroup var options: ServerOptions
        func run() async throws { try await options.run(defaultPort: 9000) }
    }
}
