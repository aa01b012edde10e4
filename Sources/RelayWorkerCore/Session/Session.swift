import ChildProcess
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One WebSocket connection = one session: handshake → checks → `session_start` →
/// runtime and client loops → teardown → `session_end`.
struct Session {
    let options: WorkerOptions
    let registry: AdapterRegistry
    let logger: Logger

    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let sink = EventSink(outbound: outbound, sendTimeout: options.sendTimeout, logger: logger)
        let reader = MessageReader(frames: inbound.makeAsyncIterator(), limit: options.maxMessageBytes)

        // The handshake must arrive within the timeout; the timer (a child task, cancelled when the
        // read returns) closes the socket, which ends the read.
        let first: Result<MessageReader.Message, MessageReader.Failure>?
        do {
            async let _ = Self.handshakeTimer(sink, after: options.handshakeTimeout)
            first = await reader.next(cap: options.maxHandshakeBytes)
        }
        guard let first, case .success(let message) = first else {
            if case .failure(let failure)? = first { await refuse(sink, failure.message, code: failure.code) }
            return
        }
        guard case .text(let text) = message else {
            return await refuse(sink, "Invalid handshake: first message must be a JSON text frame")
        }
        let context: SessionContext
        let runtime: any AgentRuntime
        switch prepare(text, sink: sink) {
        case .failure(let refusal):
            if refusal.beforeSession { logger.info("handshake refused", metadata: ["reason": .client(refusal.message)]) }
            sink.setSessionID(refusal.sessionID)
            return await refuse(sink, refusal.message)
        case .success(let prepared):
            context = prepared.context
            runtime = prepared.runtime
        }
        sink.setSessionID(context.handshake.sessionID)
        var sessionLogger = logger
        sessionLogger[metadataKey: "session"] = .client(context.handshake.sessionID)
        let log = sessionLogger
        log.info("session start", metadata: ["tool": .client(context.handshake.tool), "folder": .client(context.folder)])

        await sink.send(
            RelayEvent(
                "session_start",
                metadata: [
                    "tool": .string(context.handshake.toolAsSent), "folder": .string(context.folder),
                    "model": JSON(context.handshake.model), "cmd": .array(context.command.map(JSON.string)),
                    "workspace_id": context.handshake.workspaceID,
                ]
            )
        )

        // Whichever ends first (agent stream, client, slow-client watchdog) ends the session.
        let exitCode: Int32?? = await withTaskGroup(of: Int32??.self) { group in
            group.addTask {
                do {
                    return .some(try await runtime.run())
                } catch is CancellationError {
                    return nil
                } catch {
                    log.warning("runtime failed", metadata: ["error": .client(String(describing: error))])
                    let text = String(describing: error)
                    await sink.error(text.isEmpty ? "Failed to start \(context.handshake.tool) runtime" : text)
                    return nil
                }
            }
            group.addTask {
                await Self.pumpClient(reader, runtime: runtime, sink: sink)
                return nil
            }
            group.addTask {
                await sink.watchSlowClient()
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let exitCode {
            var end = RelayEvent("session_end")
            end.exitCode = exitCode.map(Int.init)
            await sink.send(end)
        }
        await sink.close(.normalClosure, reason: nil)
        log.info("session end", metadata: ["exit_code": "\(exitCode.map { $0.map(String.init) ?? "none" } ?? "cancelled")"])
    }

    private static func handshakeTimer(_ sink: EventSink, after timeout: Duration) async {
        guard (try? await Task.sleep(for: timeout)) != nil else { return }
        await sink.error("Handshake timeout: first message must be session config JSON")
        await sink.close(.normalClosure, reason: nil)
    }

    /// Reads client messages and hands them to the runtime; acks as ai-relay does. Bad frames never end the
    /// session except an oversize message (1009, as the reference's library does) and a text message
    /// that is not UTF-8 (1007). A broken JSON object or a permission answer without a usable id gets
    /// an `error` event and is dropped.
    static func pumpClient(_ reader: MessageReader, runtime: any AgentRuntime, sink: EventSink) async {
        while let next = await reader.next() {
            switch next {
            case .failure(let failure):
                await sink.error(failure.message)
                await sink.close(failure.code, reason: failure.message)
                return
            case .success(.binary):
                // Told, not silently dropped: a client that sends binary has a bug worth seeing.
                await sink.error("Binary frames are not supported: send JSON text frames")
                continue
            case .success(.text(let text)):
                switch ClientCommand.parse(text) {
                case .failure(let invalid):
                    await sink.error(invalid.message)
                case .success(nil):
                    continue
                case .success(let command?):
                    await runtime.handle(command)
                    if let ack = command.ack { await sink.send(ack) }
                }
            }
        }
    }

    private struct Prepared {
        let context: SessionContext
        let runtime: any AgentRuntime
    }

    private struct Refusal: Error {
        let message: String
        var sessionID = ""
        var beforeSession = true
    }

    /// Handshake validation, policy and preflight.
    private func prepare(_ text: String, sink: EventSink) -> Result<Prepared, Refusal> {
        let handshake: Handshake
        do {
            handshake = try Handshake.parse(text, newSessionID: Self.uuid4)
        } catch {
            return .failure(Refusal(message: error.reason))
        }
        guard let adapter = registry.adapter(for: handshake.tool) else {
            return .failure(Refusal(message: "Invalid handshake: unknown tool '\(handshake.toolAsSent)'"))
        }
        if let arg = HandshakeRules.refusedArgument(handshake.extraArgs, allowed: adapter.allowedFlags) {
            return .failure(Refusal(message: "Invalid handshake: extra_arg '\(arg)' is not allowed for \(handshake.tool)"))
        }
        for key in handshake.env.keys.sorted() {
            if let why = HandshakeRules.envRefusal(for: key, operatorAllowed: options.allowedEnv) {
                return .failure(Refusal(message: "Invalid handshake: \(why)"))
            }
        }
        if handshake.mcpConfig != nil, !options.allowMCPConfig {
            return .failure(Refusal(message: "Invalid handshake: mcp_config is disabled on this worker"))
        }
        let sid = handshake.sessionID
        let folder: String
        do {
            folder = try WorkspacePolicy.resolve(
                handshake.folder, root: options.workspaceRoot, cwd: WorkspacePolicy.currentDirectory())
        } catch {
            return .failure(Refusal(message: error.message, sessionID: sid, beforeSession: false))
        }
        var environment = options.baseEnvironment
        if environment["TERM"] == nil { environment["TERM"] = "xterm-256color" }
        adapter.prepare(environment: &environment, handshake: handshake, options: options)
        environment.merge(handshake.env) { _, new in new }
        let command = adapter.baseCommand(handshake)
        if let executable = command.first {
            guard ChildSpec.resolve(executable, path: environment["PATH"]) != nil else {
                return .failure(
                    Refusal(
                        message: "Command not found: \(executable). Is it installed and on PATH?", sessionID: sid,
                        beforeSession: false))
            }
        }
        let context = SessionContext(
            handshake: handshake, folder: folder, environment: environment, command: command, options: options,
            sink: sink, logger: logger)
        return .success(Prepared(context: context, runtime: adapter.makeRuntime(context)))
    }

    private func refuse(_ sink: EventSink, _ message: String, code: WebSocketErrorCode = .normalClosure) async {
        logger.info("session refused", metadata: ["reason": .client(message)])
        await sink.error(message)
        await sink.close(code, reason: nil)
    }

    static func uuid4() -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String($0, radix: 16).leftPad(2) }.joined()
        let h = Array(hex)
        return [h[0..<8], h[8..<12], h[12..<16], h[16..<20], h[20..<32]].map { String($0) }.joined(separator: "-")
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
