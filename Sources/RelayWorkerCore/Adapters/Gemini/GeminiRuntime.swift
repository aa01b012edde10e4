import ChildProcess
import Foundation
import Logging
import RelayProtocol

/// Drives the Gemini CLI over ACP (JSON-RPC 2.0 lines, spec §4.4).
///
/// Start: initialize → session/load (the id saved in `<folder>/.gemini_acp_session`) or session/new.
/// Each prompt is a `session/prompt` (300 s); its answer ends the turn with `response` `text:""`
/// (or `error`). Other requests wait 60 s, as in the reference.
///
/// The WebSocket session outlives the CLI: the reference ends the session when gemini exits (its
/// README says ACP exits after every prompt). Here the exit is reported as `status`
/// `agent_exited` (with `exit_code`) and the next prompt starts the CLI again and reloads the same
/// ACP session (whose replay of the conversation is not sent again).
///
/// Also unlike the reference: `session/cancel` is a notification (ACP gives it no answer) and
/// pending permission requests are then answered `cancelled`; `session/load` sends `cwd` and
/// `mcpServers`; one prompt at a time (a second one gets an `error`); agent→client requests the
/// worker does not offer (fs/*, terminal/*) get a JSON-RPC error instead of no answer.
actor GeminiRuntime: AgentRuntime {
    let context: SessionContext
    private var sink: EventSink { context.sink }
    private var options: WorkerOptions { context.options }
    private let calls = RPCCalls()

    private enum Phase { case idle, starting, live }
    private var phase = Phase.idle
    private var child: RunningChild?
    private var nextID: Int64 = 1
    private var acpSessionID: String?
    private var firstSetup = true
    /// A restart's `session/load` replays the conversation the client has already seen: drop it.
    private var dropReplay = false
    private var modelOverride: String?
    private var startError: String?
    private var liveWaiters: [CheckedContinuation<Bool, Never>] = []
    private var spawnRequests: AsyncStream<Void>.Continuation?
    private var promptRunning = false
    /// The session is over: nothing may wait for a CLI any more.
    private var stopped = false
    private var promptTask: Task<Void, Never>?
    /// Permission requests awaiting the client: id text → (id as sent, offered options).
    private var permissions: [String: (id: JSON, options: [JSON])] = [:]

    init(context: SessionContext) { self.context = context }

    static let sessionFile = ".gemini_acp_session"

    // MARK: lifecycle

    nonisolated func run() async throws -> Int32? {
        let (requests, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await setSpawnRequests(continuation)
        defer { continuation.finish() }
        var iterator = requests.makeAsyncIterator()
        var first = true
        while !Task.isCancelled {
            if !first {
                guard await iterator.next() != nil else { break }
            }
            do {
                let code = try await runProcess()
                if Task.isCancelled { break }
                var exited = RelayEvent(
                    "status", text: "gemini exited with code \(code); the next prompt starts it again",
                    status: "agent_exited")
                exited.exitCode = Int(code)
                await sink.send(exited)
            } catch {
                // The first start failing ends the session (as in the reference); a failed restart
                // was reported to the prompt that asked for it.
                if first || Task.isCancelled {
                    await shutDown()
                    throw error
                }
            }
            first = false
        }
        await shutDown()
        return nil
    }

    private func setSpawnRequests(_ c: AsyncStream<Void>.Continuation) { spawnRequests = c }

    private func shutDown() {
        stopped = true
        promptTask?.cancel()
        setLive(false)
    }

    /// One CLI process: spawn, set up the ACP session, read until stdout ends. Returns the exit code.
    private nonisolated func runProcess() async throws -> Int32 {
        var environment = context.environment
        await GeminiAuth.prepare(&environment, options: context.options, logger: context.logger)
        let argv = await commandLine(path: environment["PATH"])
        let spec = ChildSpec(
            arguments: argv, environment: environment, workingDirectory: context.folder,
            stopGrace: context.options.stopGrace)
        calls.reopen()
        do {
            let (_, status) = try await ChildProcess.run(spec) { child in
                await self.attach(child)
                try await ChildLines.drive(child, sink: self.context.sink, readStdout: { await self.readStdout(child) }) {
                    try await self.setUp()
                    await self.setLive(true)
                }
            }
            await detach()
            return status.code
        } catch let error as SpawnError {
            let text = error.isNotFound ? "Command not found: gemini. Is it installed and on PATH?" : error.description
            await failStart(text)
            throw RPCError(text)
        } catch {
            await failStart("\(error)")
            throw error
        }
    }

    private func commandLine(path: String?) -> [String] {
        var argv = context.command
        argv[0] = ChildSpec.resolve(argv[0], path: path) ?? argv[0]
        if let modelOverride {
            if let i = argv.firstIndex(of: "--model"), i + 1 < argv.count {
                argv[i + 1] = modelOverride
            } else {
                argv.insert(contentsOf: ["--model", modelOverride], at: min(4, argv.count))
            }
        }
        return argv
    }

    private func attach(_ child: RunningChild) {
        self.child = child
        phase = .starting
    }

    private func detach() {
        child = nil
        phase = .idle
        permissions.removeAll()
        setLive(false)
    }

    private func failStart(_ text: String) {
        startError = text
        detach()
    }

    private func setLive(_ live: Bool) {
        if live { phase = .live }
        for waiter in liveWaiters { waiter.resume(returning: live) }
        liveWaiters.removeAll()
    }

    /// The live CLI, starting one if there is none; false when it could not be started.
    private func ensureLive() async -> Bool {
        if stopped { return false }
        if phase == .live, child != nil { return true }
        if phase == .idle, !firstSetup {
            phase = .starting
            startError = nil
            spawnRequests?.yield()
        }
        return await withCheckedContinuation { liveWaiters.append($0) }
    }

    private func setUp() async throws {
        let initialize = try await call(
            "initialize",
            [
                "protocolVersion": 1, "clientInfo": ["name": "ai-relay", "version": "0"],
                "clientCapabilities": [
                    "auth": ["terminal": false], "fs": ["readTextFile": false, "writeTextFile": false],
                    "terminal": false,
                ],
            ])
        let canLoad = initialize["result"]?["agentCapabilities"]?["loadSession"]?.boolValue != false
        let restart = !firstSetup
        let saved = restart ? acpSessionID : Self.readSavedSession(context.folder)
        firstSetup = false
        if canLoad, let saved {
            dropReplay = restart
            defer { dropReplay = false }
            do {
                let response = try await call(
                    "session/load", ["sessionId": .string(saved), "cwd": .string(context.folder), "mcpServers": []])
                if let error = response["error"], error.objectValue != nil {
                    context.logger.info("could not load Gemini session \(saved): \(error.encodedString())")
                } else {
                    acpSessionID = response["result"]?["sessionId"]?.stringValue ?? saved
                    return
                }
            } catch {
                context.logger.info("could not load Gemini session \(saved): \(error)")
            }
        }
        let response = try await call("session/new", ["cwd": .string(context.folder), "mcpServers": []])
        if let error = response["error"], let object = error.objectValue {
            throw RPCError("Gemini ACP session/new failed: \((object["message"] ?? error).textValue)")
        }
        acpSessionID = response["result"]?["sessionId"]?.stringValue
        if let acpSessionID { Self.saveSession(acpSessionID, folder: context.folder) }
    }

    static func readSavedSession(_ folder: String) -> String? {
        guard let text = try? String(contentsOfFile: folder + "/" + sessionFile, encoding: .utf8) else { return nil }
        let id = text.trimmed
        return id.isEmpty ? nil : id
    }

    static func saveSession(_ id: String, folder: String) {
        try? id.write(toFile: folder + "/" + sessionFile, atomically: true, encoding: .utf8)
    }

    // MARK: JSON-RPC

    /// Sends a request and returns the whole response message (JSON-RPC errors are not thrown,
    /// as in the reference); throws on timeout or when the CLI exits.
    private func call(_ method: String, _ params: JSON, timeout: Duration? = nil) async throws -> JSON {
        let key = try await send(method, params)
        return try await calls.wait(
            key, timeout: timeout ?? options.geminiRPCTimeout, timeoutMessage: "Timed out waiting for Gemini ACP \(method)")
    }

    /// Writes a request; returns its id text for `calls.wait`.
    private func send(_ method: String, _ params: JSON) async throws -> String {
        guard let child else { throw RPCError("Gemini ACP process exited") }
        let id = nextID
        nextID += 1
        let key = String(id)
        try calls.reserve(key)
        let line: JSON = ["jsonrpc": "2.0", "method": .string(method), "params": params, "id": .int(id)]
        do {
            try await child.write(line.encoded() + [0x0A])
        } catch {
            calls.resolve(key, .null)
            throw RPCError("Gemini ACP process exited")
        }
        return key
    }

    private func write(_ line: JSON) async {
        guard let child else { return }
        try? await child.write(line.encoded() + [0x0A])
    }

    // MARK: reading

    private nonisolated func readStdout(_ child: RunningChild) async {
        await ChildLines.forEachLine(of: child) { limit in
            await self.sink.error("Relay error: a line from gemini exceeded \(limit) bytes and was skipped")
        } _: { line in
            await self.receive(line)
        }
        calls.close("Gemini ACP process exited")
    }

    private func receive(_ line: [UInt8]) async {
        if line.isEmpty { return }
        let text = String(decoding: line, as: UTF8.self)
        guard let message = ChildLines.object(line), let object = message.objectValue else {
            await sink.send(RelayEvent("stdout", text: text))
            return
        }
        if object.has("method") {
            let method = message["method"]?.stringValue ?? ""
            let params = message["params"] ?? .object(JSONObject())
            switch method {
            case "session/update":
                if dropReplay { return }
                let update = params["update"] ?? params
                for event in GeminiEventMapper.events(forUpdate: update) { await sink.send(event) }
            case "session/request_permission":
                let id = message["id"] ?? .null
                if let key = id.idKey {
                    permissions[key] = (id, params["options"]?.arrayValue ?? [])
                }
                await sink.send(GeminiEventMapper.permissionEvent(id: id, params: params, raw: message))
            default:
                await sink.send(RelayEvent("stream_event", raw: message))
                if let id = message["id"], !id.isNull {
                    // A request the worker does not offer (we advertised no fs/terminal capability).
                    await write([
                        "jsonrpc": "2.0", "id": id,
                        "error": ["code": -32601, "message": .string("Method not supported by this client: \(method)")],
                    ])
                }
            }
        } else if let update = message["update"] {
            for event in GeminiEventMapper.events(forUpdate: update) { await sink.send(event) }
        } else if let id = message["id"] {
            if let key = id.idKey { calls.resolve(key, message) }
        } else {
            await sink.send(RelayEvent("stdout", text: text))
        }
    }

    // MARK: client messages

    func handle(_ message: ClientMessage) async {
        switch message.type {
        case "interrupt": await interrupt()
        case "set_model": await setModel(message)
        case "permission_response": await answerPermission(message)
        default: await prompt(message)
        }
    }

    private func prompt(_ message: ClientMessage) async {
        let parts = GeminiPrompt.parts(message)
        if parts.isEmpty { return }
        if promptRunning {
            await sink.error("Gemini is still answering the previous prompt; wait for its response or interrupt it")
            return
        }
        promptRunning = true
        guard await ensureLive() else {
            promptRunning = false
            await sink.error(startError ?? "Gemini ACP process exited")
            return
        }
        var params = JSONObject(["prompt": .array(parts), "messageId": .string(UUID().uuidString.lowercased())])
        if let acpSessionID { params["sessionId"] = .string(acpSessionID) }
        let key: String
        do {
            key = try await send("session/prompt", .object(params))
        } catch {
            promptRunning = false
            await sink.error("\(error)")
            return
        }
        let timeout = options.geminiPromptTimeout
        promptTask = Task { await self.finishPrompt(key, timeout: timeout) }
    }

    /// The prompt's answer ends the turn: `response` with `text:""` and the whole answer as `raw`,
    /// or `error` (JSON-RPC error, timeout, CLI gone).
    private func finishPrompt(_ key: String, timeout: Duration) async {
        defer { promptRunning = false }
        do {
            let response = try await calls.wait(
                key, timeout: timeout, timeoutMessage: "Timed out waiting for Gemini ACP session/prompt")
            if let error = response["error"], error.isTruthy {
                let text = error.objectValue != nil ? error["message"]?.stringValue : error.textValue
                await sink.send(
                    RelayEvent("error", text: text.flatMap { $0.isEmpty ? nil : $0 } ?? "Gemini session/prompt error", raw: response))
            } else {
                await sink.send(RelayEvent("response", text: "", raw: response))
            }
        } catch is CancellationError {
        } catch {
            await sink.error("\(error)")
        }
    }

    private func interrupt() async {
        guard phase == .live, let child, let acpSessionID else { return }
        let cancel: JSON = ["jsonrpc": "2.0", "method": "session/cancel", "params": ["sessionId": .string(acpSessionID)]]
        try? await child.write(cancel.encoded() + [0x0A])
        // ACP: after session/cancel the client answers its pending permission requests `cancelled`.
        let pending = permissions
        permissions.removeAll()
        for request in pending.sorted(by: { $0.key < $1.key }).map(\.value) {
            await write(["jsonrpc": "2.0", "id": request.id, "result": GeminiPermission.cancelled])
            await sink.send(RelayEvent("permission_cancelled", requestID: request.id))
        }
    }

    private func setModel(_ message: ClientMessage) async {
        guard let model = message["model"]?.stringValue, !model.isEmpty else { return }
        modelOverride = model
        guard phase == .live, child != nil else { return }
        var params = JSONObject(["modelId": .string(model)])
        if let acpSessionID { params = JSONObject(["sessionId": .string(acpSessionID), "modelId": .string(model)]) }
        do {
            let response = try await call("session/set_model", .object(params))
            if let error = response["error"], error.isTruthy {
                await sink.error("Gemini session/set_model failed: \((error["message"] ?? error).textValue)")
            }
        } catch {
            await sink.error("\(error)")
        }
    }

    private func answerPermission(_ message: ClientMessage) async {
        guard let key = message.requestID, let request = permissions.removeValue(forKey: key) else { return }
        let option = GeminiPermission.optionID(message, options: request.options)
        context.logger.info("permission_response → id=\(key) optionId=\(option)")
        await write(["jsonrpc": "2.0", "id": request.id, "result": GeminiPermission.selected(option)])
    }
}
