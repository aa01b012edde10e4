import ChildProcess
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// One WebSocket connection: its first message either starts a session (a handshake) or attaches to one
/// (`{"attach": id, "after_seq": N}`); either way the socket then follows the session (``Attachment``)
/// until it closes, which only detaches it (docs/protocol.md §7).
struct Connection {
    let options: WorkerOptions
    let registry: AdapterRegistry
    let directory: SessionDirectory
    let logger: Logger

    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let socket = ClientSocket(outbound: outbound, sendTimeout: options.sendTimeout, logger: logger)
        let reader = MessageReader(frames: inbound.makeAsyncIterator(), limit: options.maxMessageBytes)

        // The first message must arrive within the timeout; the timer (a child task, cancelled when the
        // read returns) closes the socket, which ends the read.
        let first: Result<MessageReader.Message, MessageReader.Failure>?
        do {
            async let _ = Self.handshakeTimer(socket, after: options.handshakeTimeout)
            first = await reader.next(cap: options.maxHandshakeBytes)
        }
        guard let first, case .success(let message) = first else {
            if case .failure(let failure)? = first { await refuse(socket, failure.message, code: failure.code) }
            return
        }
        guard case .text(let text) = message else {
            return await refuse(socket, "Invalid handshake: first message must be a JSON text frame")
        }
        if let request = AttachRequest.parse(text) {
            return await attach(request, reader: reader, socket: socket)
        }
        let session: LiveSession
        switch prepare(text) {
        case .failure(let refusal):
            if refusal.beforeSession { logger.info("handshake refused", metadata: ["reason": .client(refusal.message)]) }
            return await refuse(socket, refusal.message, sessionID: refusal.sessionID)
        case .success(.attach(let live)):
            logger.info("handshake names a live conversation: attaching", metadata: ["session": .client(live.id)])
            guard await socket.write(Self.attached(live)) else { return }
            return await Attachment.run(live, reader: reader, socket: socket, after: 0)
        case .success(.start(let s)):
            session = s
        }
        do {
            try directory.start(session)
        } catch {
            return await refuse(socket, "The worker is shutting down", sessionID: session.id)
        }
        await Attachment.run(session, reader: reader, socket: socket, after: 0)
    }

    private static func handshakeTimer(_ socket: ClientSocket, after timeout: Duration) async {
        guard (try? await Task.sleep(for: timeout)) != nil else { return }
        await socket.error("Handshake timeout: first message must be session config JSON", sessionID: "")
        await socket.close(.normalClosure, reason: nil)
    }

    // ---- attach ----------------------------------------------------------------------------------

    private func attach(_ request: Result<AttachRequest, AttachRequest.Invalid>, reader: MessageReader, socket: ClientSocket) async {
        let req: AttachRequest
        switch request {
        case .failure(let invalid): return await refuse(socket, invalid.message)
        case .success(let r): req = r
        }
        guard let session = directory.session(req.sessionID) else {
            logger.info("attach refused: unknown session", metadata: ["session": .client(req.sessionID)])
            return await refuse(socket, "Unknown session '\(req.sessionID)'", sessionID: req.sessionID)
        }
        let last = session.log.lastSeq
        guard req.afterSeq <= last else {
            return await refuse(socket, "Invalid attach: 'after_seq' \(req.afterSeq) is after the session's last_seq \(last)", sessionID: session.id)
        }
        logger.info("attach", metadata: ["session": .client(session.id), "after_seq": "\(req.afterSeq)", "last_seq": "\(last)"])
        guard await socket.write(Self.attached(session)) else { return }
        await Attachment.run(session, reader: reader, socket: socket, after: req.afterSeq)
    }

    /// `{"type":"status","status":"attached","session_id":…,"last_seq":L,"state":…}` (no `seq`).
    static func attached(_ session: LiveSession) -> [UInt8] {
        var o = JSONObject()
        o["type"] = "status"
        o["ts"] = .double(RelayEvent.now())
        o["session_id"] = .string(session.id)
        o["status"] = "attached"
        o["last_seq"] = .int(Int64(session.log.lastSeq))
        o["state"] = .string(session.activityState.rawValue)
        return JSON.object(o).encoded()
    }

    private enum Prepared {
        case start(LiveSession)
        /// The handshake's `claude_session_id` is driven by a live session: attach instead of a second agent.
        case attach(LiveSession)
    }

    private struct Refusal: Error {
        let message: String
        var sessionID = ""
        var beforeSession = true
    }

    /// Handshake validation, policy and preflight.
    private func prepare(_ text: String) -> Result<Prepared, Refusal> {
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
        if let conversation = handshake.claudeSessionID, !conversation.isEmpty, let live = directory.live(claudeSessionID: conversation) {
            return .success(.attach(live))
        }
        // A live session's id is taken; an ended one's may be used again (as in ai-relay): the new session
        // replaces it in the directory, and the old log stays on disk.
        guard directory.session(sid).map({ $0.log.isEnded }) ?? true else {
            return .failure(Refusal(message: "Invalid handshake: session_id '\(sid)' is taken; attach to it or choose another", sessionID: sid))
        }
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
        var sessionLogger = logger
        sessionLogger[metadataKey: "session"] = .client(sid)
        let sink = directory.makeSink(
            sessionID: sid, claudeSessionID: handshake.claudeSessionID, tool: handshake.tool, folder: folder, model: handshake.model)
        let context = SessionContext(
            handshake: handshake, folder: folder, environment: environment, command: command, options: options,
            sink: sink, logger: sessionLogger)
        let runtime = adapter.makeRuntime(context)
        sessionLogger.info("session start", metadata: ["tool": .client(handshake.tool), "folder": .client(folder)])
        sink.record(
            RelayEvent(
                "session_start",
                metadata: [
                    "tool": .string(handshake.toolAsSent), "folder": .string(folder),
                    "model": JSON(handshake.model), "cmd": .array(command.map(JSON.string)),
                    "workspace_id": handshake.workspaceID,
                ]
            )
        )
        return .success(
            .start(
                LiveSession(
                    id: sid, tool: handshake.toolAsSent, folder: folder, model: handshake.model, createdAt: RelayEvent.now(), sink: sink,
                    runtime: runtime, logger: sessionLogger)))
    }

    private func refuse(_ socket: ClientSocket, _ message: String, sessionID: String = "", code: WebSocketErrorCode = .normalClosure) async {
        logger.info("session refused", metadata: ["reason": .client(message)])
        await socket.error(message, sessionID: sessionID)
        await socket.close(code, reason: nil)
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
