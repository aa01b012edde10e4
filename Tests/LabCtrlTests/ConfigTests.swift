import Testing

@testable import LabCtrlCore

@Suite struct ConfigTests {
    @Test func defaultsMatchTheOriginal() throws {
        let c = try LabConfig.fromEnvironment([:])
        #expect(c.mode == .single)
        #expect(c.workspaceRoot == "/var/ohwise-lab-workspaces")
        #expect(c.image == "ohwise-lab-ctrl:local")
        #expect(c.network == "lab-network")
        #expect(c.containerPort == 9000)
        #expect(c.containerUser == "labuser")
        #expect(c.containerHome == "/home/labuser")
        #expect(c.containerStartupDelay == 1.5)
        #expect(c.containerWSTimeout == 15)
        #expect(c.idleTimeout == 1800)
        #expect(c.host == "127.0.0.1" && c.port == 8080)
        #expect(c.listensOnLoopback)
    }

    @Test func containerHomeFollowsTheUser() throws {
        #expect(try LabConfig.fromEnvironment(["LAB_CONTAINER_USER": "dev"]).containerHome == "/home/dev")
        #expect(try LabConfig.fromEnvironment(["LAB_CONTAINER_USER": "dev", "LAB_CONTAINER_HOME": "/work/"]).containerHome == "/work")
    }

    @Test func typedValues() throws {
        let c = try LabConfig.fromEnvironment([
            "LAB_MODE": "MULTI", "LAB_PORT": "0", "LAB_IDLE_TIMEOUT_SECS": "2.5", "LAB_CONTAINER_MEMORY": "1.5g",
            "LAB_CONTAINER_CPUS": "0.5", "LAB_CONTAINER_PIDS_LIMIT": "0", "LAB_ALLOWED_TOOLS": "Claude, codex",
            "LAB_ALLOWED_ENV": "FOO_BAR,BAZ", "LAB_ALLOW_MCP_CONFIG": "yes", "LAB_LOG_FORMAT": "json", "LAB_LOG_LEVEL": "DEBUG",
            "LAB_JWT_SECRET": String(repeating: "k", count: 32), "LAB_DOCKER_HOST": "tcp://10.0.0.1:2376",
        ])
        #expect(c.mode == .multi && c.port == 0 && c.idleTimeout == 2.5)
        #expect(c.containerMemoryBytes == Int64(1.5 * 1024 * 1024 * 1024))
        #expect(c.containerCPUs == 0.5 && c.containerPidsLimit == nil)
        #expect(c.allowedTools == ["claude", "codex"] && c.allowedEnv == ["FOO_BAR", "BAZ"])
        #expect(c.allowMCPConfig && c.logFormat == .json && c.logLevel == .debug)
        #expect(c.dockerHost == "tcp://10.0.0.1:2376")
    }

    @Test func emptyValuesCountAsUnset() throws {
        let c = try LabConfig.fromEnvironment(["LAB_PORT": "", "LAB_JWT_SECRET": "  ", "LAB_MODE": ""])
        #expect(c.port == 8080 && c.jwtSecret == nil && c.mode == .single)
    }

    @Test(arguments: [
        ("LAB_MODE", "cluster"), ("LAB_PORT", "http"), ("LAB_PORT", "70000"), ("LAB_PORT", "-1"),
        ("LAB_WORKSPACE_ROOT", "relative/path"), ("LAB_CONTAINER_HOME", "home"), ("LAB_IDLE_TIMEOUT_SECS", "-5"),
        ("LAB_IDLE_TIMEOUT_SECS", "0"), ("LAB_CONTAINER_WS_TIMEOUT", "soon"), ("LAB_CONTAINER_STARTUP_DELAY", "nan"),
        ("LAB_CONTAINER_PORT", "0"), ("LAB_CONTAINER_MEMORY", "lots"), ("LAB_CONTAINER_MEMORY", "1k"), ("LAB_CONTAINER_CPUS", "-1"),
        ("LAB_ALLOWED_TOOLS", "claude,bash"), ("LAB_ALLOWED_ENV", "1BAD"), ("LAB_ALLOW_MCP_CONFIG", "maybe"),
        ("LAB_LOG_FORMAT", "xml"), ("LAB_LOG_LEVEL", "loud"), ("LAB_JWT_SECRET", "short"), ("LAB_ADMIN_TOKEN", "tiny"),
        ("LAB_LOCAL_USER", "../root"), ("LAB_DOCKER_HOST", "ssh://box"), ("LAB_TOKENS_FILE", "tokens.txt"),
        ("LAB_MAX_FRAME_BYTES", "10"),
    ])
    func badValueNamesTheVariable(_ name: String, _ value: String) {
        do {
            _ = try LabConfig.fromEnvironment([name: value])
            Issue.record("\(name)=\(value) was accepted")
        } catch {
            #expect(error.variable == name)
            #expect(error.description.hasPrefix(name))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func secretsAreNeverEchoed() {
        do {
            _ = try LabConfig.fromEnvironment(["LAB_JWT_SECRET": "s3cr3t"])
            Issue.record("accepted")
        } catch {
            #expect(!error.description.contains("s3cr3t"))
        }
        let c = try? LabConfig.fromEnvironment(["LAB_JWT_SECRET": String(repeating: "q", count: 40), "LAB_ADMIN_TOKEN": "admin-admin-admin-admin"])
        let text = c?.redactedDescription ?? ""
        #expect(text.contains("LAB_JWT_SECRET=<redacted>") && text.contains("LAB_ADMIN_TOKEN=<redacted>"))
        #expect(!text.contains("qqqq") && !text.contains("admin-admin"))
    }

    @Test func everyVariableIsDocumentedAndPrinted() throws {
        let printed = try LabConfig.fromEnvironment([:]).redactedDescription.split(separator: "\n").map { String($0.split(separator: "=")[0]) }
        #expect(Set(printed) == Set(LabConfig.variables.map(\.name)))
    }

    @Test func unknownLabVariablesAreReported() {
        #expect(LabConfig.unknownVariables(in: ["LAB_IDLE_TIMEOUT_SECONDS": "5", "LAB_MODE": "single", "LAB_CACHE": "/x", "PATH": "/bin"])
            == ["LAB_IDLE_TIMEOUT_SECONDS"])
    }

    @Test func envFileFormat() throws {
        let pairs = try EnvFile.parse(
            """
            # provider settings
            ANTHROPIC_BASE_URL=http://127.0.0.1:9999
            export OPENAI_API_KEY="sk-1=2"
            EMPTY=
            QUOTED='single quoted'\r

            """)
        #expect(pairs.map(\.0) == ["ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "EMPTY", "QUOTED"])
        #expect(pairs.map(\.1) == ["http://127.0.0.1:9999", "sk-1=2", "", "single quoted"])
        #expect(throws: ConfigError.self) { try EnvFile.parse("NOEQUALS\n") }
        #expect(throws: ConfigError.self) { try EnvFile.parse("BAD KEY=1\n") }
    }

    @Test func userIDs() {
        for ok in ["alice", "a", "user_1.test-x", String(repeating: "z", count: 64), "0day"] { #expect(UserID(ok) != nil, "\(ok)") }
        for bad in ["", ".", "..", "../x", "a/b", "-rf", "_x", ".hidden", "al ice", "ünï", String(repeating: "z", count: 65), "a\0b"] {
            #expect(UserID(bad) == nil, "\(bad)")
        }
        #expect(UserID("alice")?.containerName(deployment: "lab") == "lab-alice")
    }
}
