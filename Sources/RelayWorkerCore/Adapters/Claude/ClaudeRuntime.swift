import ChildProcess
import Logging
import RelayProtocol

/// Drives Claude Code in stream-json mode for one session.
///
/// Unlike the reference (a new process per prompt, killing any running turn), one child serves the
/// whole session: prompts go over the same stdin and Claude queues them. A new child (with
/// `--resume`) is started only when needed: first prompt, after the child exited, after `/new`.
/// All its work runs under `run`: the spawn loop, each child's stdout and stderr readers.
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
    /// tool with its original input instead of `{}`.
    private var pendingPermissions: [String: JSON] = [:]
    private var requestCounter = 0
    private var totals = ClaudeTotals()
    private var mcpConfig: ClaudeMCPConfig?

    init(context: SessionContext) {
        self.context = context
        self.resumeID = context.handshake.claudeSessionID.flatMap { $0.isEmpty ? nil : $0 }
        (spawnRequests, spawnContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: run loop

    nonisolated func run() async throws -> Int32? {
        defer { spawnContinuation.finish() }
        if let config = context.handshake.mcpConfig { await setMCPConfig(ClaudeMCPConfig.write(config, logger: context.logger)) }
        for await _ in spawnRequests {
            if Task.isCancelled { break }
            await runChild()
        }
        await cleanUp()
        return nil
    }

    private nonisolated func runChild() async {
        // OAuth preference and refresh run before every spawn, on the child's own env.
        var environment = context.environment
        await ClaudeAuth.prepare(&environment, options: context.options, logger: context.logger)
        let spec = ChildSpec(
            arguments: await argv(), environment: environment, workingDirectory: context.folder,
            stopGrace: context.options.stopGrace)
        do {
            _ = try await ChildProcess.run(spec) { child in
                await self.attach(child)
                try await ChildLines.drive(
                    child, sink: sink, stderr: .asWritten, stderrGrace: .milliseconds(500),
                    readStdout: { await self.readStdout(child) })
            }
        } catch let error as SpawnError {
            await sink.error(
                error.isNotFound ? "Command not found: claude. Is it installed and on PATH?" : error.description)
            await failWaiters()
        } catch {
            await sink.error("Relay error: \(error)")
            await failWaiters()
        }
        if let notice = await detach() { await sink.send(notice) }
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
    /// Returns the notice for a turn the child left unfinished.
    private func detach() -> RelayEvent? {
        child = nil
        if Task.isCancelled { failWaiters() }
        pendingPermissions.removeAll()
        defer { turnOpen = false }
        guard turnOpen, !retiring, !Task.isCancelled else { return nil }
        let text =
            "⚠️ The agent process ended unexpectedly before finishing this turn. Your conversation is saved — send another message to continue."
        return RelayEvent("response", text: text, metadata: ["source": "subprocess_exit_no_result"])
    }

    private func setMCPConfig(_ config: ClaudeMCPConfig?) { mcpConfig = config }

    private func cleanUp() {
        for waiter in readyWaiters { waiter.resume(returning: nil) }
        readyWaiters.removeAll()
        mcpConfig?.remove()
    }

    /// Forwards the child's stdout lines as events until it ends (stderr: `ChildLines.drive`).
    private nonisolated func readStdout(_ child: RunningChild) async {
        await ChildLines.forEachLine(of: child) { limit in
            await self.sink.error("Relay error: a line from claude exceeded \(limit) bytes and was skipped")
        } _: { line in
            await self.forward(line)
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
            totals.add(result: m)
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

    func handle(_ command: ClientCommand) async {
        switch command.action {
        case .permissionAnswer(let answer): await answerPermission(answer)
        case .interrupt: await control(["subtype": "interrupt"])
        case .setModel(let model): await setModel(model)
        case .setPermissionMode(let change, approvalPolicy: false): await setPermissionMode(change.mode)
        case .claudeUpdate: await update()
        case .controlResponse, .passive: return
        case .prompt, .setPermissionMode, .rawRequest: await prompt(command.prompt)
        }
    }

    private func prompt(_ prompt: Prompt) async {
        let text = prompt.trimmedText
        if text.isEmpty { return }
        if let command = ClaudeSlashCommand(text) { return await answer(command) }
        guard let child = await liveChild() else { return }
        autoCompacted = false
        turnOpen = true
        do {
            try await child.write(userLine(content: prompt.body, uuid: prompt.uuid))
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

    private func answer(_ command: ClaudeSlashCommand) async {
        let text: String
        switch command {
        case .cost: text = totals.costText
        case .status:
            text = totals.statusText(
                model: modelOverride ?? runningModel ?? "default",
                pending: modelOverride != nil && modelOverride != runningModel, conversation: resumeID)
        case .newConversation:
            resumeID = nil
            retireChild()
            text = ClaudeSlashCommand.newConversationText
        }
        await sink.send(RelayEvent("response", text: text, metadata: ["source": .string(command.source)]))
    }

    /// Ends the current child after its stdin closes; the next prompt starts a new one.
    private func retireChild() {
        guard let child else { return }
        retiring = true
        self.child = nil
        turnOpen = false
        child.input.finish()
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

    private func answerPermission(_ answer: PermissionAnswer) async {
        let id = answer.id
        guard pendingPermissions[id] != nil else {
            await sink.error(UnknownPermission.message(id))
            return
        }
        let message = answer.fields
        // Claude Code has no "for the session" answer here, so allowForSession allows once.
        let deny = !answer.verdict.allows
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

    private func setModel(_ requested: JSON?) async {
        let model = (requested?.stringValue ?? "").trimmed
        if !model.isEmpty {
            let valid =
                model.first.map { $0.isASCII && ($0.isLetter || $0.isNumber) } == true
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
    /// the operator, not the client, decides that.
    private func setPermissionMode(_ mode: String) async {
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
        await sink.send(await ClaudeInstall.run(environment: context.environment, folder: context.folder))
    }

    // MARK: command line

    private func argv() -> [String] {
        var argv = context.command
        argv[0] = ChildSpec.resolve(argv[0], path: context.environment["PATH"]) ?? argv[0]
        if let mcpConfig { argv += ["--mcp-config", mcpConfig.path] }
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

}
