import ChildProcess
import Logging
import RelayProtocol

/// Drives one `codex app-server` over JSON-RPC lines without a `jsonrpc` member (spec §4.3).
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
    private let calls = RPCCalls()

    private var child: RunningChild?
    private var nextID: Int64 = 1
    private var threadID: String?
    /// The running turn; nil when none (cleared on `turn/completed`).
    private var turnID: String?
    private var model: String?
    private var approvalPolicy: JSON?
    /// Requests codex sent us that the client has not answered: id text → (id as sent, method).
    private var serverRequests: [String: (id: JSON, method: String)] = [:]
    private var compactionRequested: Set<String> = []
    /// nil while starting; then whether the thread is ready.
    private var ready: Bool?
    private var readyWaiters: [CheckedContinuation<Bool, Never>] = []

    init(context: SessionContext) {
        self.context = context
        let raw = context.handshake.raw
        self.model = context.handshake.model.flatMap { $0.isEmpty ? nil : $0 }
        self.approvalPolicy = [raw["approvalPolicy"], raw["approval_policy"]].lazy.compactMap { $0 }.first { $0.isTruthy }
    }

    // MARK: lifecycle

    nonisolated func run() async throws -> Int32? {
        if let refusal = CodexPolicy.handshakeRefusal(context.handshake.raw, options: context.options) {
            await setReady(false)
            throw RPCError(refusal)
        }
        var environment = context.environment
        CodexAuth.prepare(&environment, options: context.options, logger: context.logger)
        var argv = context.command
        argv[0] = ChildSpec.resolve(argv[0], path: environment["PATH"]) ?? argv[0]
        let spec = ChildSpec(
            arguments: argv, environment: environment, workingDirectory: context.folder,
            stopGrace: context.options.stopGrace)
        do {
            let (_, status) = try await ChildProcess.run(spec) { child in
                await self.attach(child)
                try await ChildLines.drive(child, sink: self.context.sink, readStdout: { await self.readStdout(child) }) {
                    try await self.startSequence()
                    await self.setReady(true)
                }
            }
            await setReady(false)
            return status.code
        } catch let error as SpawnError {
            await setReady(false)
            throw RPCError(error.isNotFound ? "Command not found: codex. Is it installed and on PATH?" : error.description)
        } catch {
            await setReady(false)
            throw error
        }
    }

    private func attach(_ child: RunningChild) { self.child = child }

    private func setReady(_ value: Bool) {
        if ready == nil || value == false { ready = value }
        for waiter in readyWaiters { waiter.resume(returning: ready ?? false) }
        readyWaiters.removeAll()
    }

    /// Waits until the start sequence finished; false when it failed (the session is ending).
    private func awaitReady() async -> Bool {
        if let ready { return ready }
        return await withCheckedContinuation { readyWaiters.append($0) }
    }

    private func startSequence() async throws {
        _ = try await call(
            "initialize",
            [
                "clientInfo": ["name": "ai-relay", "title": "AI Relay", "version": "0.0.0"],
                "capabilities": ["experimentalApi": true],
            ])
        try await notify("initialized")
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
                context.logger.warning("thread/resume failed (\(error)); starting a new thread")
            }
        }
        var params = JSONObject([
            "cwd": .string(context.folder), "ephemeral": raw.has("ephemeral") ? raw["ephemeral"]! : true,
            "serviceName": raw.has("serviceName") ? raw["serviceName"]! : "ai-relay",
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

    private func call(_ method: String, _ params: JSON) async throws -> JSON {
        guard let child else { throw RPCError("codex app-server is not running") }
        let id = nextID
        nextID += 1
        let key = String(id)
        try calls.reserve(key)
        let line: JSON = ["id": .int(id), "method": .string(method), "params": params]
        do {
            try await child.write(line.encoded() + [0x0A])
        } catch {
            calls.resolve(key, .null)
            throw RPCError("codex app-server is not running")
        }
        let response = try await calls.wait(
            key, timeout: options.codexRPCTimeout, timeoutMessage: "Timed out waiting for codex app-server \(method)")
        if let error = response["error"], response.objectValue?.has("result") != true { throw RPCError(error.encodedString()) }
        guard let result = response["result"], result.isTruthy else { return .object(JSONObject()) }
        return result
    }

    private func notify(_ method: String, _ params: JSON? = nil) async throws {
        guard let child else { throw RPCError("codex app-server is not running") }
        var line = JSONObject(["method": .string(method)])
        if let params, !params.isNull { line["params"] = params }
        try await child.write(JSON.object(line).encoded() + [0x0A])
    }

    private func respond(to id: JSON, _ result: JSON) async {
        guard let child else { return }
        let line: JSON = ["id": id, "result": result]
        do {
            try await child.write(line.encoded() + [0x0A])
        } catch {
            await sink.error("Relay error: could not answer codex: the app-server has exited")
        }
    }

    // MARK: reading

    private nonisolated func readStdout(_ child: RunningChild) async {
        await ChildLines.forEachLine(of: child) { limit in
            await self.sink.error("Relay error: a line from codex exceeded \(limit) bytes and was skipped")
        } _: { line in
            await self.receive(line)
        }
        calls.close("codex app-server exited")
    }

    private func receive(_ line: [UInt8]) async {
        let text = String(decoding: line, as: UTF8.self).trimmed
        if text.isEmpty { return }
        guard let message = ChildLines.object(line) else {
            await sink.send(RelayEvent("stdout", text: text))
            return
        }
        let raw = JSON.fragment(line)
        let method = message["method"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let id = message["id"].nonNull
        let params = message["params"].truthy ?? .object(JSONObject())
        if let id, method == nil, message.objectValue!.has("result") || message.objectValue!.has("error") {
            if let key = id.idKey { calls.resolve(key, message) }
            return
        }
        if let id, let method {
            let key = id.idKey ?? id.encodedString()
            serverRequests[key] = (id, method)
            await sink.send(CodexEventMapper.requestEvent(key: key, method: method, params: params, raw: raw))
            return
        }
        guard let method else {
            await sink.send(RelayEvent("stream_event", content: message, raw: raw))
            return
        }
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
        Task {
            do {
                _ = try await self.call("thread/compact/start", ["threadId": .string(threadID)])
            } catch {
                await self.sink.error("codex thread/compact/start failed: \(error)")
            }
        }
    }

    // MARK: client messages

    func handle(_ message: ClientMessage) async {
        switch message.type {
        case "interrupt": await interrupt()
        case "permission_response": await answer(message)
        case "control_response": await controlResponse(message)
        case "set_model":
            if let m = message["model"], m.isTruthy { model = m.textValue }
        case "set_permission_mode", "set_approval_policy":
            approvalPolicy = [message["mode"], message["approvalPolicy"], message["approval_policy"]].lazy
                .compactMap { $0 }.first { $0.isTruthy }
        case "raw_request": await rawRequest(message)
        default: await prompt(message)
        }
    }

    private func prompt(_ message: ClientMessage) async {
        let (text, images) = Self.promptInput(message)
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
        for key in ["cwd", "effort", "summary", "serviceTier", "personality", "outputSchema"] where message.object.has(key) {
            params[key] = message[key]
        }
        if let cwd = message["cwd"], !cwd.isNull {
            // Relative to the session folder; must stay inside the workspace root (§11.2).
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

    /// The prompt text (`text`, else `content`: a string, or the text parts of a block list) and
    /// image inputs for Anthropic-style base64 image blocks / `input_image` parts with a URL.
    static func promptInput(_ message: ClientMessage) -> (String, [JSON]) {
        if let text = message.text, text.isTruthy { return (text.textValue, []) }
        guard let content = message.content, content.isTruthy else { return ("", []) }
        guard let blocks = content.arrayValue else { return (content.textValue, []) }
        var texts: [String] = []
        var images: [JSON] = []
        for block in blocks {
            switch block["type"]?.stringValue {
            case "text", "input_text":
                if let t = block["text"]?.stringValue { texts.append(t) }
            case "image":
                let source = block["source"] ?? .null
                if let data = source["data"]?.stringValue {
                    let mime = source["media_type"]?.stringValue ?? "image/png"
                    images.append(["type": "image", "url": .string("data:\(mime);base64,\(data)")])
                } else if let url = source["url"]?.stringValue ?? block["url"]?.stringValue {
                    images.append(["type": "image", "url": .string(url)])
                }
            case "input_image":
                if let url = block["image_url"]?.stringValue { images.append(["type": "image", "url": .string(url)]) }
            default:
                break
            }
        }
        return (texts.joined(separator: "\n"), images)
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

    private func answer(_ message: ClientMessage) async {
        guard let key = message.requestID else { return }
        guard let request = serverRequests.removeValue(forKey: key) else {
            context.logger.info("permission_response for unknown or expired codex request \(key); ignored")
            return
        }
        await respond(to: request.id, CodexApproval.result(for: request.method, message))
    }

    /// `control_response`: the client's own result for a pending server request, sent verbatim.
    private func controlResponse(_ message: ClientMessage) async {
        guard let key = message.requestID, let request = serverRequests.removeValue(forKey: key) else { return }
        let result = message.object.has("result") ? message["result"]! : (message["response"] ?? .null)
        await respond(to: request.id, result)
    }

    private func rawRequest(_ message: ClientMessage) async {
        guard options.allowCodexConfig else {
            await sink.error("raw_request is disabled on this worker")
            return
        }
        guard let method = message["method"]?.stringValue, !method.isEmpty else {
            await sink.error("raw_request needs a 'method'")
            return
        }
        guard await awaitReady() else { return }
        do {
            _ = try await call(method, message["params"] ?? .null)
        } catch {
            await sink.error("\(error)")
        }
    }
}
