import NIOCore
import NIOWebSocket
import RelayProtocol
import Testing

@testable import LabCtrlCore

@Suite struct ProxyPartsTests {
    @Test func leadingType() {
        #expect(FrameInspector.leadingType(ByteBuffer(string: #"{"type": "input_ack", "ts": 1}"#)) == "input_ack")
        #expect(FrameInspector.leadingType(ByteBuffer(string: #"{"type":"response","text":"x"}"#)) == "response")
        #expect(FrameInspector.leadingType(ByteBuffer(string: #" {  "type" :  "error"}"#)) == "error")
        #expect(FrameInspector.leadingType(ByteBuffer(string: #"{"ts":1,"type":"x"}"#)) == nil)
        #expect(FrameInspector.leadingType(ByteBuffer(string: "plain text")) == nil)
        #expect(FrameInspector.leadingType(ByteBuffer(string: #"{"type":"unterminated"#)) == nil)
    }

    @Test func requestKeysNormaliseNumbers() {
        #expect(FrameInspector.requestKey(.int(0)) == "i:0")
        #expect(FrameInspector.requestKey(.double(3)) == "i:3")
        #expect(FrameInspector.requestKey(.string("0")) == "s:0")
        #expect(FrameInspector.requestKey(nil) == nil)
    }

    @Test func labEventsUseTheRelayEnvelope() throws {
        let e = try #require(try JSON.parse(LabEvents.status("lab.ready", "ok", sessionID: "S").encoded()).objectValue)
        #expect(e["type"] == "status" && e["status"] == "lab.ready" && e["session_id"] == "S" && e["ts"]?.doubleValue != nil)
        let err = try #require(try JSON.parse(WorkerHub.deathEvent(
            WorkerDeath(user: UserID("a")!, id: "c", reason: "it ran out of memory", oomKilled: true, exitCode: 137), sessionID: "S").encoded()).objectValue)
        #expect(err["type"] == "error" && (err["text"]?.stringValue ?? "").contains("out of memory"))
        #expect(err["metadata"]?["lab"]?["reason"] == "oom")
    }

    @Test func containerLayoutIsHardenedAndHashed() throws {
        var c = LabConfig()
        c.mode = .multi
        c.containerMemoryBytes = 512 << 20
        c.containerCPUs = 1.5
        let layout = ContainerLayout(config: c, environment: ["HOME": "/home/labuser", "K": "v"], workerArguments: ["--allow-mcp-config"])
        let spec = layout.spec(user: UserID("alice")!, hostWorkspace: "/srv/ws/alice", port: 9000, specHash: "h", createdAt: 1, token: "t0123456789abcdef")
        let hc = try #require(spec.hostConfig)
        #expect(hc.capDrop == ["ALL"] && hc.capAdd == ["NET_BIND_SERVICE"] && hc.securityOpt == ["no-new-privileges"])
        #expect(hc.memory == 512 << 20 && hc.memorySwap == 512 << 20 && hc.nanoCpus == 1_500_000_000 && hc.pidsLimit == 512)
        #expect(hc.networkMode == "lab-network" && hc.mounts?.first?.source == "/srv/ws/alice" && hc.mounts?.first?.target == "/home/labuser")
        #expect(spec.user == "labuser" && spec.entrypoint == ["relay-worker"])
        #expect(
            spec.cmd == [
                "serve", "--host", "0.0.0.0", "--port", "9000", "--workspace-root", "/home/labuser", "--state-dir", "/home/labuser/.lab/sessions",
                "--allow-mcp-config",
            ])
        #expect(spec.labels?["lab.managed-by"] == "labctrl" && spec.labels?["lab.user"] == "alice" && spec.labels?["lab.spec-hash"] == "h")
        // The hash changes with what matters and not with the per-worker port of host mode.
        let h = layout.specHash(imageID: "sha256:1")
        #expect(h == layout.specHash(imageID: "sha256:1") && h != layout.specHash(imageID: "sha256:2"))
        var c2 = c
        c2.containerMemoryBytes = 1 << 30
        #expect(ContainerLayout(config: c2, environment: ["HOME": "/home/labuser", "K": "v"], workerArguments: ["--allow-mcp-config"]).specHash(imageID: "sha256:1") != h)
        #expect(ContainerLayout(config: c, environment: ["HOME": "/home/labuser", "K": "w"], workerArguments: ["--allow-mcp-config"]).specHash(imageID: "sha256:1") != h)
        var host = c
        host.network = "host"
        let hl = ContainerLayout(config: host, environment: [:], workerArguments: [])
        #expect(hl.command(port: 4000).contains("127.0.0.1"))
        #expect(hl.spec(user: UserID("a")!, hostWorkspace: "/w", port: 4000, specHash: "h", createdAt: 0, token: "t0123456789abcdef").labels?["lab.port"] == "4000")
    }

    @Test func subprocessWorkersNeverSeeControllerSecrets() {
        let env = LabController.processWorkerEnvironment(
            ["PATH": "/bin", "LAB_JWT_SECRET": "s", "LAB_ADMIN_TOKEN": "a", "AI_RELAY_CLAUDE_PREFER_OAUTH": "1", "HOME": "/root"],
            envFile: [("ANTHROPIC_API_KEY", "k"), ("PATH", "/opt/bin:/bin")])
        #expect(env == ["PATH": "/opt/bin:/bin", "AI_RELAY_CLAUDE_PREFER_OAUTH": "1", "ANTHROPIC_API_KEY": "k"])
        var c = LabConfig()
        c.allowedEnv = ["A", "B"]
        c.allowMCPConfig = true
        c.sessionGrace = 90
        #expect(
            LabController.workerArguments(c) == [
                "--allow-env", "A", "--allow-env", "B", "--allow-mcp-config", "--detach-grace", "90", "--max-turn-secs", "7200",
            ])
        // Clamped to what the worker takes.
        c.sessionGrace = 1e9
        c.maxTurn = 1e9
        #expect(LabController.workerArguments(c).suffix(4) == ["--detach-grace", "2592000", "--max-turn-secs", "604800"])
    }
}

@Suite struct WireFramesTests {
    @Test func unmaskMatchesNIO() {
        let key: WebSocketMaskingKey = [0x12, 0x34, 0x56, 0x78]
        for n in [0, 1, 3, 7, 8, 9, 15, 16, 17, 100, 1027] {
            let plain = ByteBuffer(bytes: (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            var masked = plain
            masked.webSocketMask(key)
            #expect(WireFrames.unmask(masked, key: key) == plain, "length \(n)")
            let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: masked)
            #expect(frame.unmaskedData == plain)
        }
    }

    @Test func maskedHeaders() {
        let key: WebSocketMaskingKey = [1, 2, 3, 4]
        #expect(Array(WireFrames.maskedHeader(fin: true, opcode: .text, length: 5, key: key).readableBytesView) == [0x81, 0x85, 1, 2, 3, 4])
        #expect(Array(WireFrames.maskedHeader(fin: false, opcode: .binary, length: 300, key: key).readableBytesView) == [0x02, 0xFE, 0x01, 0x2C, 1, 2, 3, 4])
        #expect(Array(WireFrames.maskedHeader(fin: true, opcode: .continuation, length: 70000, key: key).readableBytesView)
            == [0x80, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70, 1, 2, 3, 4])
    }

    @Test func substringSearch() {
        #expect(FrameInspector.contains(ByteBuffer(string: #"{"a":1,"type":"permission_response"}"#), "permission_response"))
        #expect(FrameInspector.contains(ByteBuffer(string: "pppping"), "ping"))
        #expect(!FrameInspector.contains(ByteBuffer(string: "pin"), "ping"))
        #expect(!FrameInspector.contains(ByteBuffer(string: ""), "ping"))
        #expect(FrameInspector.contains(ByteBuffer(string: "ping"), "ping"))
    }
}

@Suite struct WorkerTokenTests {
    @Test func tokensAreLongRandomAndFoundInTheEnv() {
        let a = WorkerToken.generate()
        let b = WorkerToken.generate()
        #expect(a.utf8.count == 64 && a != b)
        #expect(a.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        #expect(WorkerToken.find(in: ["PATH=/bin", "RELAY_WORKER_TOKEN=\(a)"]) == a)
        #expect(WorkerToken.find(in: ["RELAY_WORKER_TOKEN="]) == nil)
        #expect(WorkerToken.find(in: nil) == nil)
        // The token never shows in an address's description (logs).
        #expect(!WorkerAddress(host: "127.0.0.1", port: 1, token: a).description.contains(a))
    }

    @Test func theTokenIsOnlyInTheEnvAndNoInitRuns() throws {
        let layout = ContainerLayout(config: LabConfig(), environment: ["A": "1"], workerArguments: [])
        let one = layout.spec(user: UserID("alice")!, hostWorkspace: "/w", port: 9000, specHash: "h", createdAt: 0, token: "t-one-0123456789ab")
        #expect(one.env?.contains("RELAY_WORKER_TOKEN=t-one-0123456789ab") == true)
        #expect(one.hostConfig?.initProcess == false)
        #expect(one.labels?.values.contains { $0.contains("t-one-0123456789ab") } == false)
    }
}
