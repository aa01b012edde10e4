import ChildProcess
import Logging
import RelayProtocol

/// Drives one `codex app-server` over JSON-RPC lines without a `jsonrpc` member.
///
/// Start: initialize → initialized → thread/resume (handshake `codex_thread_id`) or thread/start.
/// Each prompt is a `turn/start` on that thread. Server requests (approvals, dynamic tools) become
/// `permission_request` / `tool_call` events answered by the client's `permission_response`.
///
/// Unlike the reference: every request has a timeout (`--codex-rpc-timeout`), an error answer or a
/// timeout is reported as an `error` event instead of tearing the session down, the turn id is
/// cleared when the turn completes (an interrupt then reports `no_active_turn`), list content is
/// sent as text (and images as image inputs) instead of Python-repr, and an unanswered approval
/// that codex withdraws (`serverRequest/resolved`) is reported as `permission_cancelled`.
actor CodexRuntime: AgentRuntime {
    let context: SessionContext
    private var sink: EventSink { context.sink }
    private var options: WorkerOptions { context.options }
    private let rpc = JSONRPCChild(.codexAppServer, wording: .codex)

    private var threadID: String?
    /// The running turn; nil when none (cleared on `turn/completed`).
    private var turnID: String?
    private var model: String?
    private var approvalPolicy: JSON?
    /// Requests codex sent us that the client has not answered: id text → (id as sent, method).
    private var serverRequests: [String: (id: JSON, method: String, params: JSON)] = [:]
    private var compactionRequested: Set<String> = []

    init(context: SessionContext) {
        self.context = context
        let raw = context.handshake.raw
        self.model = context.handshake.model.flatMap { $0.isEmpty ? nil : $0 }
        self.approvalPolicy = [raw["approvalPolicy"], raw["approval_policy"]].lazy.compactMap { $0 }.first { $0.isTruthy }
    }

    // MARK: lifecycle

    nonisolated func run() async throws -> Int32? {
        try await rpc.run { try await self.serve() }
    }

    /// The one app-server process: spawn, start sequence, read until stdout ends.
    private nonisolated func serve() async throws -> Int32? {
        if let refusal = CodexPolicy.handshakeRefusal(context.handshake.raw, options: context.options) {
            await rpc.stop()
            throw RPCError(refusal)
        }
        var environment = context.environment
        CodexAuth.prepare(&environment, options: context.options, logger: context.logger)
        var argv = context.command
        argv[0] = ChildSpec.resolve(argv[0], path: environment["PATH"]) ?? argv[0]
        let spec = ChildSpec(
            arguments: argv, environment: environment, workingDirectory: context.folder,
            stopGrace: context.options.stopGrace)
        let status = try await rpc.serve(spec, sink: context.sink, receive: { await self.receive($0) }) {
            try await self.startSequence()
        }
        return status.code
    }

    /// Waits until the start sequence finished; false when it failed (the session is ending).
    private func awaitReady() async -> Bool { await rpc.awaitLive() }

    private func startSequence() async throws {
        _ = try await call(
            "initialize",
            [
                "clientInfo": ["name": "ai-relay", "title": "AI Relay", "version": "0.0.0"],
                "capabilities": ["experimentalApi": true],
            ])
        try await rpc.notify("initialized")
        let raw = context.handshake.raw
        if let resume = raw["codex_thread_id"]?.stringValue, !resume.isEmpty {
            var params = JSONObject(["threadId": .string(resume), "excludeTurns": true])
            params["model"] = model.map(JSON.string)
            params["approvalPolicy"] = approvalPolicy
            params["sandbox"] = raw["sandbox"].truthy
            do {
                let result = try await call("thread/resume", .object(params))
                threadID = Self.id(of: result["thread"]) ?? resume
                await sink.send(
                    RelayEvent(
                        "status", metadata: ["thread_id": JSON(threadID), "resumed": true], status: "thread_started"))
                return
            } catch {
                context.logger.warning("thread/resume failed; starting a new thread", metadata: ["error": .client("\(error)")])
            }
        }
        var params = JSONObject([
            "cwd": .string(context.folder), "ephemeral": raw["ephemeral"] ?? true,
            "serviceName": raw["serviceName"] ?? "ai-relay",
        ])
        params["model"] = model.map(JSON.string)
        params["approvalPolicy"] = approvalPolicy
        params["sandbox"] = raw["sandbox"].truthy
        for key in [
            "modelProvider", "serviceTier", "approvalsReviewer", "config", "baseInstructions", "developerInstructions",
            "personality",
        ] where raw.has(key) {
            params[key] = raw[key]
        }
        let result = try await call("thread/start", .object(params))
        threadID = Self.id(of: result["thread"]) ?? Self.id(of: result)
        await sink.send(
            RelayEvent("status", metadata: ["thread_id": JSON(threadID), "result": result], status: "thread_started"))
    }

    /// `id`, else `threadId`, else `turnId` of an object (the reference's `_extract_id`).
    static func id(of value: JSON?) -> String? {
        guard let value, case .object = value else { return nil }
        for key in ["id", "threadId", "turnId"] {
            if let v = value[key], v.isTruthy { return v.textValue }
        }
        return nil
    }

    // MARK: JSON-RPC

    /// A request's `result` (`{}` when empty or missing); an `error` answer is thrown.
    private func call(_ method: String, _ params: JSON) async throws -> JSON {
        let response = try await rpc.call(method, params, timeout: options.codexRPCTimeout)
        if let error = response["error"], response.objectValue?.has("result") != true { throw RPCError(error.encodedString()) }
        guard let result = response["result"], result.isTruthy else { return .object(JSONObject()) }
        return result
    }

    private func respond(to id: JSON, _ result: JSON) async {
        do {
            try await rpc.respond(to: id, result)
        } catch {
            await sink.error("Relay error: could not answer codex: the app-server has exited")
        }
    }

    // MARK: reading

    private func receive(_ incoming: JSONRPCIncoming) async {
        switch incoming {
        case .text(let line):
            let text = String(decoding: line, as: UTF8.self).trimmed
            if !text.isEmpty { await sink.send(RelayEvent("stdout", text: text)) }
        case .other(let message, let line):
            await sink.send(RelayEvent("stream_event", content: message, raw: .fragment(line)))
        case .request(let id, let method, let params, _, let line):
            let key = id.idKey ?? id.encodedString()
            serverRequests[key] = (id, method, params)
            await sink.send(CodexEventMapper.requestEvent(key: key, method: method, params: params, raw: .fragment(line)))
        case .notification(let method, let params, _, let line):
            await notification(method, params, raw: .fragment(line))
        }
    }

    private func notification(_ method: String, _ params: JSON, raw: JSON) async {
        switch method {
        case "turn/started":
            turnID = Self.id(of: params["turn"]) ?? turnID
        case "turn/completed":
            let done = Self.id(of: params["turn"])
            if done == nil || done == turnID { turnID = nil }
        case "serverRequest/resolved":
            if let key = params["requestId"].flatMap(\.idKey), serverRequests.removeValue(forKey: key) != nil {
                await sink.send(
                    RelayEvent(
                        "permission_cancelled", metadata: ["method": .string(method)], requestID: .string(key), raw: raw))
                return
            }
        default:
            break
        }
        for event in CodexEventMapper.notificationEvents(method: method, params: params, raw: raw) {
            await sink.send(event)
            if event.type == "context_warning" { compactOnce(turn: params["turnId"]?.stringValue ?? "") }
        }
    }

    /// The context window is full: ask codex to compact the thread, once per turn. (The reference
    /// sends the text "/compact" as a prompt, which app-server passes to the model.)
    private func compactOnce(turn: String) {
        guard let threadID, compactionRequested.insert(turn).inserted else { return }
        // In the background: the reader that got here must go on reading for the answer to arrive.
        rpc.background {
            do {
                _ = try await self.call("thread/compact/start", ["threadId": .string(threadID)])
            } catch {
                await self.sink.error("codex thread/compact/start failed: \(error)")
            }
        }
    }

    // MARK: client messages

    func handle(_ command: ClientCommand) async {
        switch command.action {
        case .interrupt: await interrupt()
        case .permissionAnswer(let reply): await answer(reply)
        case .controlResponse(_, let message): await controlResponse(message)
        case .setModel(let requested):
            if let m = requested, m.isTruthy { model = m.textValue }
        case .setPermissionMode(let change, _): approvalPolicy = change.approvalPolicy
        case .rawRequest(let method, let params): await rawRequest(method: method, params: params)
        case .prompt, .claudeUpdate, .passive: await prompt(command.prompt)
        }
    }

    /// `message`: the prompt with its per-turn options (`model`, `cwd`, `sandboxPolicy`…).
    private func prompt(_ message: Prompt) async {
        let (text, images) = message.textAndImages
        if text.isEmpty && images.isEmpty { return }
        guard await awaitReady() else { return }
        guard let threadID else {
            await sink.error("Codex thread is not ready")
            return
        }
        var input: [JSON] = [["type": "text", "text": .string(text), "text_elements": []]]
        input += images
        var params = JSONObject(["threadId": .string(threadID), "input": .array(input)])
        if let m = message["model"], m.isTruthy { params["model"] = m } else { params["model"] = model.map(JSON.string) }
        params["approvalPolicy"] =
            [message["approvalPolicy"], message["approval_policy"]].lazy.compactMap { $0 }.first { $0.isTruthy }
            ?? approvalPolicy
        if let sandbox = [message["sandboxPolicy"], message["sandbox_policy"]].lazy.compactMap({ $0 }).first(where: {
            $0.isTruthy
        }) {
            if !options.allowCodexFullAccess, CodexPolicy.widensSandbox(sandbox) {
                await sink.error("codex sandboxPolicy \(sandbox.encodedString()) is not allowed on this worker")
                return
            }
            params["sandboxPolicy"] = sandbox
        }
        for key in ["cwd", "effort", "summary", "serviceTier", "personality", "outputSchema"] where message.fields.has(key) {
            params[key] = message[key]
        }
        if let cwd = message["cwd"], !cwd.isNull {
            // Relative to the session folder; must stay inside the workspace root.
            let path = cwd.textValue.hasPrefix("/") ? cwd.textValue : context.folder + "/" + cwd.textValue
            do {
                let resolved = try WorkspacePolicy.resolve(path, root: options.workspaceRoot, cwd: context.folder)
                params["cwd"] = .string(resolved)
            } catch {
                await sink.error(error.message)
                return
            }
        }
        do {
            let result = try await call("turn/start", .object(params))
            turnID = Self.id(of: result["turn"]) ?? turnID
            await sink.send(
                RelayEvent("input_ack", text: text, metadata: ["turn_id": JSON(turnID), "result": result]))
        } catch {
            await sink.error("\(error)")
        }
    }

    private func interrupt() async {
        guard await awaitReady(), let threadID, let turnID else {
            await sink.send(RelayEvent("status", status: "no_active_turn"))
            return
        }
        do {
            _ = try await call("turn/interrupt", ["threadId": .string(threadID), "turnId": .string(turnID)])
            await sink.send(
                RelayEvent(
                    "status", metadata: ["thread_id": .string(threadID), "turn_id": .string(turnID)],
                    status: "interrupted"))
        } catch {
            await sink.error("\(error)")
        }
    }

    private func answer(_ answer: PermissionAnswer) async {
        let key = answer.id
        guard let request = serverRequests.removeValue(forKey: key) else {
            context.logger.info("permission_response for unknown or expired codex request", metadata: ["id": .client(key)])
            await sink.error(UnknownPermission.message(key))
            return
        }
        await respond(to: request.id, CodexApproval.result(for: request.method, requested: request.params, answer.fields))
    }

    /// `control_response`: the client's own result for a pending server request; approvals still go
    /// through the one permission verdict (`CodexApproval`), other requests get it verbatim.
    private func controlResponse(_ message: ClientMessage) async {
        guard let key = message.requestID, let request = serverRequests.removeValue(forKey: key) else { return }
        var answer = message.object
        if !answer.has("result"), !answer.has("response") { answer["result"] = .null }
        await respond(to: request.id, CodexApproval.result(for: request.method, requested: request.params, ClientMessage(answer)))
    }

    private func rawRequest(method: String?, params: JSON) async {
        guard options.allowCodexConfig else {
            await sink.error("raw_request is disabled on this worker")
            return
        }
        guard let method else {
            await sink.error("raw_request needs a 'method'")
            return
        }
        guard await awaitReady() else { return }
        do {
            _ = try await call(method, params)
        } catch {
            await sink.error("\(error)")
        }
    }
}
