import ChildProcess
import Foundation
import Logging
import RelayProtocol

/// Drives the Gemini CLI over ACP (JSON-RPC 2.0 lines.4).
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
    private let rpc = JSONRPCChild(.acp, wording: .gemini)

    private var acpSessionID: String?
    private var firstSetup = true
    /// A restart's `session/load` replays the conversation the client has already seen: drop it.
    private var dropReplay = false
    private var modelOverride: String?
    private var spawnRequests: AsyncStream<Void>.Continuation?
    private var promptRunning = false
    /// Permission requests awaiting the client: id text → (id as sent, offered options).
    private var permissions: [String: (id: JSON, options: [JSON])] = [:]

    init(context: SessionContext) { self.context = context }

    static let sessionFile = ".gemini_acp_session"

    // MARK: lifecycle

    nonisolated func run() async throws -> Int32? {
        try await rpc.run { try await self.serveProcesses() }
    }

    /// One CLI after another: the first at once, each later one when a prompt asks for it.
    private nonisolated func serveProcesses() async throws -> Int32? {
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
                    await rpc.stop()
                    throw error
                }
            }
            first = false
        }
        await rpc.stop()
        return nil
    }

    private func setSpawnRequests(_ c: AsyncStream<Void>.Continuation) { spawnRequests = c }

    /// One CLI process: spawn, set up the ACP session, read until stdout ends. Returns the exit code.
    private nonisolated func runProcess() async throws -> Int32 {
        var environment = context.environment
        await GeminiAuth.prepare(&environment, options: context.options, logger: context.logger)
        let argv = await commandLine(path: environment["PATH"])
        let spec = ChildSpec(
            arguments: argv, environment: environment, workingDirectory: context.folder,
            stopGrace: context.options.stopGrace)
        do {
            let status = try await rpc.serve(spec, sink: context.sink, receive: { await self.receive($0) }) {
                try await self.setUp()
            }
            await forgetPermissions()
            return status.code
        } catch {
            await forgetPermissions()
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

    /// The CLI is gone: its permission requests can no longer be answered.
    private func forgetPermissions() { permissions.removeAll() }

    /// The live CLI, starting one if the last one exited; false when it could not be started.
    private func ensureLive() async -> Bool {
        if await rpc.restart() { spawnRequests?.yield() }
        return await rpc.awaitLive()
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
                    context.logger.info(
                        "could not load the Gemini session",
                        metadata: ["session": .client(saved), "error": .client(error.encodedString())])
                } else {
                    acpSessionID = response["result"]?["sessionId"]?.stringValue ?? saved
                    return
                }
            } catch {
                context.logger.info(
                    "could not load the Gemini session", metadata: ["session": .client(saved), "error": .client("\(error)")])
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
    private func call(_ method: String, _ params: JSON) async throws -> JSON {
        try await rpc.call(method, params, timeout: options.geminiRPCTimeout)
    }

    /// Writes a request; `rpc.wait` takes its answer.
    private func send(_ method: String, _ params: JSON) async throws -> JSONRPCChild.Call {
        try await rpc.send(method, params)
    }

    // MARK: reading

    private func receive(_ incoming: JSONRPCIncoming) async {
        switch incoming {
        case .text(let line):
            await sink.send(RelayEvent("stdout", text: String(decoding: line, as: UTF8.self)))
        case .other(let message, let line):
            if let update = message["update"] {
                for event in GeminiEventMapper.events(forUpdate: update) { await sink.send(event) }
            } else {
                await sink.send(RelayEvent("stdout", text: String(decoding: line, as: UTF8.self)))
            }
        case .request(let id, let method, let params, let message, _):
            await received(method, id: id, params: params, message: message)
        case .notification(let method, let params, let message, _):
            await received(method, id: nil, params: params, message: message)
        }
    }

    /// A request (`id`) or notification from the CLI.
    private func received(_ method: String, id: JSON?, params: JSON, message: JSON) async {
        switch method {
        case "session/update":
            if dropReplay { return }
            let update = params["update"] ?? params
            for event in GeminiEventMapper.events(forUpdate: update) { await sink.send(event) }
        case "session/request_permission":
            let id = id ?? .null
            if let key = id.idKey {
                permissions[key] = (id, params["options"]?.arrayValue ?? [])
            }
            await sink.send(GeminiEventMapper.permissionEvent(id: id, params: params, raw: message))
        default:
            await sink.send(RelayEvent("stream_event", raw: message))
            if let id {
                // A request the worker does not offer (we advertised no fs/terminal capability).
                try? await rpc.respond(to: id, errorCode: -32601, message: "Method not supported by this client: \(method)")
            }
        }
    }

    // MARK: client messages

    func handle(_ command: ClientCommand) async {
        switch command.action {
        case .interrupt: await interrupt()
        case .setModel(let model): await setModel(model)
        case .permissionAnswer(let answer): await answerPermission(answer)
        case .prompt, .setPermissionMode, .claudeUpdate, .rawRequest, .controlResponse, .passive:
            await prompt(command.prompt)
        }
    }

    private func prompt(_ prompt: Prompt) async {
        let parts = prompt.contentBlocks
        if parts.isEmpty { return }
        if promptRunning {
            await sink.error("Gemini is still answering the previous prompt; wait for its response or interrupt it")
            return
        }
        promptRunning = true
        guard await ensureLive() else {
            promptRunning = false
            await sink.error(await rpc.startFailure ?? "Gemini ACP process exited")
            return
        }
        var params = JSONObject(["prompt": .array(parts), "messageId": .string(UUID().uuidString.lowercased())])
        if let acpSessionID { params["sessionId"] = .string(acpSessionID) }
        let key: JSONRPCChild.Call
        do {
            key = try await send("session/prompt", .object(params))
        } catch {
            promptRunning = false
            await sink.error("\(error)")
            return
        }
        let timeout = options.geminiPromptTimeout
        // In the background: the client may interrupt or answer permissions while the turn runs.
        rpc.background { await self.finishPrompt(key, timeout: timeout) }
    }

    /// The prompt's answer ends the turn: `response` with `text:""` and the whole answer as `raw`,
    /// or `error` (JSON-RPC error, timeout, CLI gone).
    private func finishPrompt(_ call: JSONRPCChild.Call, timeout: Duration) async {
        defer { promptRunning = false }
        do {
            let response = try await rpc.wait(call, timeout: timeout)
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
        guard await rpc.isLive, let acpSessionID else { return }
        try? await rpc.notify("session/cancel", ["sessionId": .string(acpSessionID)])
        // ACP: after session/cancel the client answers its pending permission requests `cancelled`.
        let pending = permissions
        permissions.removeAll()
        for request in pending.sorted(by: { $0.key < $1.key }).map(\.value) {
            try? await rpc.respond(to: request.id, GeminiPermission.cancelled)
            await sink.send(RelayEvent("permission_cancelled", requestID: request.id))
        }
    }

    private func setModel(_ requested: JSON?) async {
        guard let model = requested?.stringValue, !model.isEmpty else { return }
        modelOverride = model
        guard await rpc.isLive else { return }
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

    private func answerPermission(_ answer: PermissionAnswer) async {
        let key = answer.id
        guard let request = permissions.removeValue(forKey: key) else {
            await context.sink.error(UnknownPermission.message(key))
            return
        }
        let option = GeminiPermission.optionID(answer.fields, options: request.options)
        context.logger.info("permission_response", metadata: ["id": .client(key), "optionId": .client(option)])
        try? await rpc.respond(to: request.id, GeminiPermission.selected(option))
    }
}
