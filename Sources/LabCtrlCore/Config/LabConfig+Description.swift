extension LabConfig {
    /// The effective configuration as `NAME=value` lines, secrets replaced by `<redacted>`
    /// (`labctrl --print-config`). Unset optional values print as empty.
    public var redactedDescription: String {
        func secret(_ v: String?) -> String { v == nil ? "" : "<redacted>" }
        func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
        let rows: [(String, String)] = [
            ("LAB_MODE", mode.rawValue),
            ("LAB_WORKSPACE_ROOT", workspaceRoot),
            ("LAB_IMAGE", image),
            ("LAB_NETWORK", network),
            ("LAB_CONTAINER_PORT", String(containerPort)),
            ("LAB_CONTAINER_USER", containerUser),
            ("LAB_CONTAINER_HOME", containerHome),
            ("LAB_CONTAINER_STARTUP_DELAY", num(containerStartupDelay)),
            ("LAB_CONTAINER_WS_TIMEOUT", num(containerWSTimeout)),
            ("LAB_IDLE_TIMEOUT_SECS", num(idleTimeout)),
            ("LAB_HOST", host),
            ("LAB_PORT", String(port)),
            ("LAB_JWT_SECRET", secret(jwtSecret)),
            ("LAB_JWT_PUBLIC_KEY_FILE", jwtPublicKeyFile ?? ""),
            ("LAB_JWT_ISSUER", jwtIssuer ?? ""),
            ("LAB_JWT_AUDIENCE", jwtAudience ?? ""),
            ("LAB_TOKENS_FILE", tokensFile ?? ""),
            ("LAB_ADMIN_TOKEN", secret(adminToken)),
            ("LAB_LOCAL_USER", localUser),
            ("LAB_WORKER_ENV_FILE", workerEnvFile ?? ""),
            ("LAB_WORKER_BINARY", workerBinary ?? ""),
            ("LAB_MAX_WORKERS", String(maxWorkers)),
            ("LAB_CONTAINER_MEMORY", containerMemoryBytes.map(String.init) ?? ""),
            ("LAB_CONTAINER_CPUS", containerCPUs.map { String($0) } ?? ""),
            ("LAB_CONTAINER_PIDS_LIMIT", containerPidsLimit.map(String.init) ?? "0"),
            ("LAB_CONTAINER_UID", String(containerUID)),
            ("LAB_CONTAINER_GID", String(containerGID)),
            ("LAB_WORKER_STOP_GRACE_SECS", num(workerStopGrace)),
            ("LAB_CONTROLLER_ID", controllerID),
            ("LAB_DOCKER_HOST", dockerHost ?? ""),
            ("LAB_REAPER_INTERVAL_SECS", num(reaperInterval)),
            ("LAB_IDLE_WARNING_SECS", num(idleWarning)),
            ("LAB_MAX_TURN_SECS", num(maxTurn)),
            ("LAB_ALLOWED_TOOLS", allowedTools.joined(separator: ",")),
            ("LAB_ALLOWED_ENV", allowedEnv.joined(separator: ",")),
            ("LAB_ALLOW_MCP_CONFIG", String(allowMCPConfig)),
            ("LAB_ALLOW_CORTEX_CREDENTIALS", String(allowCortexCredentials)),
            ("LAB_MAX_FRAME_BYTES", String(maxFrameBytes)),
            ("LAB_WS_PING_SECS", num(pingInterval)),
            ("LAB_HANDSHAKE_TIMEOUT_SECS", num(handshakeTimeout)),
            ("LAB_LOG_FORMAT", logFormat.rawValue),
            ("LAB_LOG_LEVEL", logLevel.rawValue),
            ("LAB_SHUTDOWN_GRACE_SECS", num(shutdownGrace)),
        ]
        return rows.map { "\($0.0)=\($0.1)" }.joined(separator: "\n")
    }
}
