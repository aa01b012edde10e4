import ChildProcess
import Foundation
import Logging
import NIOCore
import RelayProtocol

/// Drives Claude Code in stream-json mode for one session.
///
/// Unlike the reference (a new process per prompt, killing any running turn), one child serves the
/// whole session: prompts go over the same stdin and Claude queues them. A new child (with
/// `--resume`) is started only when needed: first prompt, after the child exited, after `/new`.
actor ClaudeRuntime: AgentRuntime {
    let context: SessionContext
    private var sink: EventSink { context.sink }

    private var child: RunningChild?
    private var spawning = false
    private var readyWaiters: [CheckedContinuation<RunningChild?, Never>] = []
    private let spawnRequests: AsyncStream<Void>
    private let spawnContinuation: AsyncStream<Void>.Continuation

    /// Claude's conversation id: from the handshake or the latest `system/init`.
    private var resumeID: String?
    private var modelOverride: String?
    private var runningModel: String?
    /// A prompt was written and its `result` has not arrived.
    private var turnOpen = false
    /// The current child is being retired on purpose (no "ended unexpectedly" message).
    private var retiring = false
    private var autoCompacted = false
    /// Pending permission requests: id → tool input, so an "allow" without `updatedInput` runs the
    /// tool with its original input instead of `{}` (§4.1.5 quirk).
    private var pendingPermissions: [String: JSON] = [:]
    private var requestCounter = 0
    private var totals = Totals()
    private var mcpConfigPath: String?

    struct Totals {
        var cost = 0.0
        var inputTokens: Int64 = 0
        var outputTokens: Int64 = 0
        var turns = 0
        var lastContext: Int64 = 0
    }

    init(context: SessionContext) {
        self.context = context
        self.resumeID = context.handshake.claudeSessionID.flatMap { $0.isEmpty ? nil : $0 }
        (spawnRequests, spawnContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: run loop

    nonisolated func run() async throws -> Int32? {
        defer { spawnContinuation.finish() }
        await writeMCPConfig()
        for await _ in spawnRequests {
            if Task.isCancelled { break }
            await runChild()
        }
        await cleanUp()
        return nil
    }

    private nonisolated func runChild() async {
        // OAuth preference and refresh (spec §7.1) run before every spawn, on the child's own env.
        var environment = context.environment
        await ClaudeAuth.prepare(&environment, options: context.options, logger: context.logger)
        let spec = ChildSpec(
            arguments: await argv(), environment: environment, workingDirectory: context.folder,
            stopGrace: context.options.stopGrace)
        do {
            _ = try await ChildProcess.run(spec) { child in
                await self.attach(child)
                await self.pump(child)
            }
        } catch let error as SpawnError {
            await sink.error(
                error.isNotFound ? "Command not found: claude. Is it installed and on PATH?" : error.description)
            await failWaiters()
        } catch {
            await sink.error("Relay error: \(error)")
            await failWaiters()
        }
        await detach()
    }

    /// No child could be started: the prompts waiting for one are dropped (the error was sent).
    private func failWaiters() {
        spawning = false
        for waiter in readyWaiters { waiter.resume(returning: nil) }
        readyWaiters.removeAll()
    }

    private func attach(_ child: RunningChild) {
        self.child = child
        spawning = false
        retiring = false
        for waiter in readyWaiters { waiter.resume(returning: child) }
        readyWaiters.removeAll()
    }

    /// The child ended. Prompts already waiting asked for the *next* child (after a retirement), and
    /// the run loop starts it from their pending spawn request; only cancellation fails them.
    private func detach() {
        child = nil
        if Task.isCancelled { failWaiters() }
        pendingPermissions.removeAll()
        if turnOpen, !retiring, !Task.isCancelled {
            turnOpen = false
            let text =
                "⚠️ The agent process ended unexpectedly before finishing this turn. Your conversation is saved — send another message to continue."
            Task { [sink] in await sink.send(RelayEvent("response", text: text, metadata: ["source": "subprocess_exit_no_result"])) }
        }
        turnOpen = false
    }

    private func cleanUp() {
        for waiter in readyWaiters { waiter.resume(returning: nil) }
        readyWaiters.removeAll()
        if let mcpConfigPath { unlink(mcpConfigPath) }
    }

    /// Forwards the child's stdout and stderr as events until stdout ends.
    private nonisolated func pump(_ child: RunningChild) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var lines = LineSplitter()
                do {
                    for try await chunk in child.errors! {
                        for line in lines.push(chunk) {
                            let text = String(decoding: line, as: UTF8.self)
                            if !text.trimmed.isEmpty { await self.sink.send(RelayEvent("stderr", text: text)) }
                        }
                    }
                } catch {}
                if let tail = lines.finish(), !String(decoding: tail, as: UTF8.self).trimmed.isEmpty {
                    await self.sink.send(RelayEvent("stderr", text: String(decoding: tail, as: UTF8.self)))
                }
            }
            var lines = LineSplitter()
            do {
                for try await chunk in child.output {
                    for line in lines.push(chunk) { await self.forward(line) }
                    if lines.takeOverflow() {
                        await self.sink.error("Relay error: a line from claude exceeded \(lines.maxLineBytes) bytes and was skipped")
                    }
                }
            } catch {}
            if let tail = lines.finish() { await forward(tail) }
            // stderr usually ends with stdout; give it a moment to deliver the last lines.
            group.addTask { try? await Task.sleep(for: .milliseconds(500)) }
            _ = await group.next()
            group.cancelAll()
        }
    }

    private nonisolated func forward(_ line: [UInt8]) async {
        let (events, message) = ClaudeEventMapper.events(forLine: line)
        if let message { await observe(message) }
        for event in events {
            await sink.send(event)
            if event.type == "context_warning" { await autoCompact() }
        }
    }

    /// Side effects of native messages: conversation id, totals, turn state.
    private func observe(_ m: JSON) async {
        switch m["type"]?.stringValue {
        case "system" where m["subtype"]?.stringValue == "init":
            if let model = m["model"]?.stringValue { runningModel = model }
            if let id = m["session_id"]?.stringValue, !id.isEmpty {
                resumeID = id
                await sink.send(RelayEvent("session_attach", metadata: ["claude_session_id": .string(id)]))
            }
        case "result":
            turnOpen = false
            if m["subtype"]?.stringValue == "success" {
                totals.cost += m["total_cost_usd"]?.doubleValue ?? 0
                let usage = m["usage"] ?? .null
                let input = usage["input_tokens"]?.intValue ?? 0
                totals.inputTokens += input
                totals.outputTokens += usage["output_tokens"]?.intValue ?? 0
                totals.turns += 1
                totals.lastContext =
                    input + (usage["cache_read_input_tokens"]?.intValue ?? 0)
                    + (usage["cache_creation_input_tokens"]?.intValue ?? 0)
            }
        case "control_request":
            if let id = m["request_id"]?.textValue, m["request"]?["subtype"]?.stringValue == "can_use_tool" {
                pendingPermissions[id] = m["request"]?["input"] ?? .object(JSONObject())
            }
        case "control_cancel_request":
            if let id = m["request_id"]?.textValue { pendingPermissions[id] = nil }
        default:
            break
        }
    }

    /// One automatic `/compact` per user turn when Claude reports the context is full (the reference
    /// fires it twice and can loop).
    private func autoCompact() async {
        guard !autoCompacted, let child else { return }
        autoCompacted = true
        try? await child.write(userLine(content: "/compact", uuid: nil))
    }

    // MARK: client messages

    func handle(_ message: ClientMessage) async {
        switch message.type {
        case "permission_response": await answerPermission(message)
        case "interrupt": await control(["subtype": "interrupt"])
        case "set_model": await setModel(message)
        case "set_permission_mode": await setPermissionMode(message)
        case "claude_update": await update()
        case "control_request", "control_response", "ping", "pong": return
        default: await prompt(message)
        }
    }

    private func prompt(_ message: ClientMessage) async {
        let text = message.promptText
        if text.isEmpty { return }
        switch text {
        case "/cost": return await reply(costSummary(), source: "cost_summary")
        case "/status": return await reply(statusSummary(), source: "status_summary")
        case "/new", "/clear":
            resumeID = nil
            retireChild()
            return await reply(
                "Started a fresh conversation. Your earlier chat history is still saved.", source: "new_conversation")
        default: break
        }
        guard let child = await liveChild() else { return }
        autoCompacted = false
        turnOpen = true
        let content = message.content.nonNull ?? message.text ?? .null
        do {
            try await child.write(userLine(content: content, uuid: message["uuid"]?.stringValue))
        } catch {
            turnOpen = false
            await sink.error("Relay error: could not write to claude: the process has exited")
        }
    }

    /// The current child, starting one if there is none.
    private func liveChild() async -> RunningChild? {
        if let child, !retiring { return child }
        if !spawning {
            spawning = true
            spawnContinuation.yield()
        }
        return await withCheckedContinuation { readyWaiters.append($0) }
    }

    /// Ends the current child after its stdin closes; the next prompt starts a new one.
    private func retireChild() {
        guard let child else { return }
        retiring = true
        self.child = nil
        turnOpen = false
        Task { try? await child.input.finish() }
    }

    private func userLine(content: JSON, uuid: String?) -> [UInt8] {
        var line: JSON = [
            "type": "user", "session_id": .string(resumeID ?? ""),
            "message": ["role": "user", "content": content], "parent_tool_use_id": .null,
        ]
        if let uuid, case .object(var o) = line {
            o["uuid"] = .string(uuid)
            line = .object(o)
        }
        return line.encoded() + [0x0A]
    }

    private func answerPermission(_ message: ClientMessage) async {
        guard let id = message.requestID else { return }
        let deny =
            message["behavior"]?.stringValue == "deny" || message["allow"] == .bool(false)
            || ["deny", "decline", "reject", "denied"].contains(message["decision"]?.stringValue ?? "")
        let original = pendingPermissions.removeValue(forKey: id)
        var response = JSONObject()
        if deny {
            response["behavior"] = "deny"
            response["message"] = .string(message["message"]?.stringValue ?? "Denied by user")
        } else {
            response["behavior"] = "allow"
            let given = ["updatedInput", "updated_input", "input"].lazy.compactMap { message.object.has($0) ? message[$0] : nil }.first
            response["updatedInput"] = given ?? original ?? .object(JSONObject())
        }
        if let toolUseID = message["tool_use_id"]?.stringValue ?? message["toolUseID"]?.stringValue {
            response["toolUseID"] = .string(toolUseID)
        }
        let line: JSON = [
            "type": "control_response",
            "response": ["subtype": "success", "request_id": .string(id), "response": .object(response)],
        ]
        guard let child else { return }
        try? await child.write(line.encoded() + [0x0A])
    }

    private func control(_ request: JSON) async {
        guard let child else { return }
        requestCounter += 1
        let line: JSON = ["type": "control_request", "request_id": .string("relay-\(requestCounter)"), "request": request]
        try? await child.write(line.encoded() + [0x0A])
    }

    private func setModel(_ message: ClientMessage) async {
        let model = (message["model"]?.stringValue ?? "").trimmed
        if !model.isEmpty {
            let valid =
                model.first!.isASCII && (model.first!.isLetter || model.first!.isNumber)
                && model.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
            if valid {
                modelOverride = model
                await sink.send(
                    RelayEvent(
                        "response", text: "Model switched to **\(model)**. Takes effect on your next message.",
                        metadata: ["model_switch": .string(model), "source": "set_model"]))
                await control(["subtype": "set_model", "model": .string(model)])
            } else {
                await sink.send(
                    RelayEvent(
                        "response", text: "Ignored invalid model name `\(model)`.",
                        metadata: ["model_switch_rejected": .string(model), "source": "set_model"]))
            }
        }
    }

    /// Forwards a permission-mode change, except the ones that switch the permission prompt off:
    /// the operator, not the client, decides that (§11.12).
    private func setPermissionMode(_ message: ClientMessage) async {
        let mode = (message["mode"] ?? message["permission_mode"])?.stringValue ?? ""
        guard !mode.isEmpty else { return }
        if mode == "bypassPermissions" {
            await sink.error("set_permission_mode '\(mode)' is not allowed on this worker")
            return
        }
        await control(["subtype": "set_permission_mode", "mode": .string(mode)])
    }

    private func update() async {
        guard context.options.allowClaudeUpdate else {
            await sink.error("claude_update is disabled on this worker")
            return
        }
        await sink.send(RelayEvent("status", text: "Updating Claude Code…", status: "updating"))
        retireChild()
        let spec = ChildSpec(
            arguments: [ChildSpec.resolve("claude", path: context.environment["PATH"]) ?? "claude", "install"],
            environment: context.environment, workingDirectory: context.folder)
        var output = ""
        var code: Int32 = -1
        do {
            let (text, status) = try await ChildProcess.run(spec) { child in
                try? await child.input.finish()
                var collected = ByteBuffer()
                let deadline = Task { try await Task.sleep(for: .seconds(180)); child.signalGroup(SIGKILL) }
                defer { deadline.cancel() }
                for try await var chunk in child.output { collected.writeBuffer(&chunk) }
                return String(buffer: collected)
            }
            output = text.trimmed
            code = status.code
        } catch {
            output = "`claude` binary not found in PATH."
        }
        let text =
            code == 0
            ? "Claude Code updated to the latest version.\n\n\(output)\n\nSend any message to start a session with the new version."
            : "Update failed (exit \(code)).\n\n\(output)"
        await sink.send(RelayEvent("response", text: text, metadata: ["update_exit_code": .int(Int64(code)), "source": "claude_update"]))
    }

    private func reply(_ text: String, source: String) async {
        await sink.send(RelayEvent("response", text: text, metadata: ["source": .string(source)]))
    }

    // MARK: command line

    private func argv() -> [String] {
        var argv = context.command
        argv[0] = ChildSpec.resolve(argv[0], path: context.environment["PATH"]) ?? argv[0]
        if let mcpConfigPath { argv += ["--mcp-config", mcpConfigPath] }
        if let modelOverride {
            if let i = argv.firstIndex(of: "--model"), i + 1 < argv.count {
                argv[i + 1] = modelOverride
            } else {
                argv += ["--model", modelOverride]
            }
        }
        if let resumeID { argv += ["--resume", resumeID] }
        return argv
    }

    private func writeMCPConfig() {
        guard let config = context.handshake.mcpConfig else { return }
        let path = NSTemporaryDirectory() + "ai_relay_mcp_\(UUID().uuidString).json"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            context.logger.warning("could not write the MCP config file; --mcp-config skipped")
            return
        }
        let bytes = config.encoded()
        _ = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        mcpConfigPath = path
    }

    private func costSummary() -> String {
        [
            "**Session cost:** $\(String(format: "%.4f", totals.cost))",
            "**Input tokens:** \(Self.grouped(totals.inputTokens))",
            "**Output tokens:** \(Self.grouped(totals.outputTokens))",
            "**Turns:** \(totals.turns)",
        ].joined(separator: "\n")
    }

    private func statusSummary() -> String {
        let model = modelOverride ?? runningModel ?? "default"
        let pending = (modelOverride != nil && modelOverride != runningModel) ? " (applies next turn)" : ""
        return [
            "**Model:** \(model)\(pending)",
            "**Session:** \(resumeID ?? "new (no turn yet)")",
            "**Turns:** \(totals.turns)",
            "**Context (last turn):** \(Self.grouped(totals.lastContext)) tokens",
            "**Cost so far:** $\(String(format: "%.4f", totals.cost))",
        ].joined(separator: "\n")
    }

    static func grouped(_ n: Int64) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }
}
