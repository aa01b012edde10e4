import Deadline
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

/// What a proxied session needs from the controller.
public struct ProxyEnvironment: Sendable {
    public var hub: WorkerHub
    public var firewall: HandshakeFirewall
    public var workspace: Workspace
    /// The user's home as the worker sees it (single: the host workspace; multi: `LAB_CONTAINER_HOME`).
    public var workerHome: @Sendable (UserID) -> String
    public var maxFrameBytes: Int
    public var maxHandshakeBytes: Int
    /// Open sockets and their credentials (caps, revocation).
    public var registry: ConnectionRegistry
    public var pingInterval: Duration
    public var handshakeTimeout: Duration
    public var connectTimeout: Duration
    public var metrics: LabMetrics
    public var logger: Logger
}

/// One user WebSocket: handshake → firewall → worker (progress as `lab.*`) → bidirectional proxy.
///
/// The handshake is read and checked *before* any worker is started, so a refused handshake costs
/// nothing. The frames themselves are relayed by a ``FrameRelay`` inside NIO (fragmentation, close codes
/// and reasons kept, back-pressure both ways); this task only drives the session's steps and keeps the
/// framework's side of the user's socket alive (pings, the close handshake).
enum ProxySession {
    static let connectionIDs = Atomic<Int>(0)

    /// `slot` is the socket's ``ConnectionRegistry`` entry (taken before the upgrade); `relay` was installed
    /// on `channel` with the upgrade.
    static func run(
        user: UserID, slot: Int, relay: FrameRelay, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel,
        env: ProxyEnvironment
    ) async {
        var logger = env.logger
        logger[metadataKey: "user"] = "\(user)"
        defer { relay.finalize() }
        // Revocation (token removed, JWT expired) closes the session from the outside, whatever its step.
        let ending = SessionEnding(relay: relay, outbound: outbound)
        if let why = env.registry.setCloser(slot, { why in await ending.revoke(why) }) {
            await ending.revoke(why)
            return
        }

        // ---- 1. the handshake, bounded in time (the relay's deadline) ----------------------------
        let first = (try? await relay.handshake.get()) ?? .closed
        let handshakeBytes: [UInt8]
        switch first {
        case .closed:
            return
        case .timedOut:
            let state = await relay.describe()
            logger.notice("no handshake in time", metadata: ["relay": "\(state)"])
            _ = try? await relay.inject(LabEvents.error("Handshake timeout: first message must be session config JSON", sessionID: "").encoded()).get()
            try? await outbound.close(.normalClosure, reason: nil)
            return
        case .binary:
            await refuse(relay, outbound, "Invalid handshake: first message must be a JSON text frame", sessionID: "")
            return
        case .tooLarge:
            logger.notice("handshake too large", metadata: ["limit": "\(env.maxHandshakeBytes)"])
            _ = try? await relay.inject(
                LabEvents.error("Invalid handshake: the first message exceeds \(env.maxHandshakeBytes) bytes", sessionID: "").encoded()
            ).get()
            try? await outbound.close(.messageTooLarge, reason: "handshake too large")
            return
        case .invalidUTF8:
            await ending.invalidUTF8(logger)
            return
        case .text(let bytes):
            handshakeBytes = bytes
        }

        // ---- 2. the firewall (needs the workspace for symlink checks) -------------------------
        let hostHome: String
        do {
            hostHome = try env.workspace.ensure(user)
        } catch {
            logger.error("workspace unavailable", metadata: ["error": "\(error)"])
            await fail(relay, outbound, "Could not prepare your workspace: \(error)", sessionID: "", reason: "workspace unavailable")
            return
        }
        let resolver = FolderResolver(hostHome: hostHome, workerHome: env.workerHome(user))
        let accepted: HandshakeFirewall.Accepted
        switch env.firewall.inspect(handshakeBytes, folders: resolver) {
        case .failure(let refusal):
            env.metrics.handshakeRefused(refusal.field)
            logger.notice("handshake refused", metadata: ["field": "\(refusal.field)", "text": "\(refusal.text)"])
            await refuse(relay, outbound, refusal.text, sessionID: refusal.sessionID)
            return
        case .success(let a):
            accepted = a
        }
        let sid = accepted.sessionID
        logger[metadataKey: "session"] = "\(sid)"

        // ---- 3. the worker, with progress streamed to the client ------------------------------
        let conn = ClientConnection(
            id: connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue, user: user, tool: accepted.tool, sessionID: sid,
            outbound: outbound, relay: relay, now: .now)
        guard ending.attach(conn) else { return }  // revoked meanwhile
        let handle: WorkerHandle
        do {
            handle = try await env.hub.ensure(user, attaching: conn) { p in _ = relay.inject(p.event(sessionID: sid).encoded()) }
        } catch {
            logger.error("no worker for session", metadata: ["error": "\(error)"])
            await fail(relay, outbound, "Could not start your lab worker: \(error)", sessionID: sid, reason: "worker unavailable")
            return
        }

        // ---- 4. the worker's socket, then the relay goes live ------------------------------------
        var upstream: (any Channel)?
        var lastError = ""
        var answered = true
        for attempt in 1...3 {
            do {
                upstream = try await UpstreamConnector.connect(handle.address, relay: relay, maxFrameSize: env.maxFrameBytes, timeout: env.connectTimeout)
                break
            } catch {
                lastError = "\(error)"
                answered = !(error is UpstreamConnector.NoAnswer)
                guard attempt < 3, await env.hub.isAlive(handle.id) else { break }
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
        guard let upstream else {
            if !answered, await env.hub.isAlive(handle.id) {
                // Alive by the backend's account, yet no upgrade answered: hung (the hub closes this socket too).
                await env.hub.workerUnresponsive(handle.id, detail: "no answer to the connection: \(lastError)")
            }
            await env.hub.detach(conn)
            await workerLost(conn, relay: relay, outbound: outbound, handle: handle, detail: lastError, env: env, logger: logger)
            return
        }
        if ending.isEnded {
            upstream.close(promise: nil)
            await env.hub.detach(conn)
            return
        }
        _ = try? await relay.inject(LabEvents.status("lab.ready", "Connected to your lab worker", sessionID: sid).encoded()).get()
        relay.goLive(upstream: upstream, handshake: accepted.encoded, connection: conn)
        relay.startPinging(every: .nanoseconds(Int64(env.pingInterval.secondsDouble * 1e9)))

        // ---- 5. until one side ends ------------------------------------------------------------
        // This task keeps the framework reading the user's socket (pongs, the close handshake; data frames
        // never get here) while two children wait for what the relay reports: a client protocol violation
        // (the socket is failed with 1007), and the worker's end (the user's socket is closed with the
        // worker's code — or an `error` saying why — which ends the reading).
        let sessionLogger = logger
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                guard case .invalidUTF8? = try? await relay.violation.futureResult.get() else { return }
                await ending.invalidUTF8(sessionLogger)
            }
            group.addTask {
                guard let end = try? await relay.upstreamEnd.futureResult.get() else { return }
                switch end {
                case .closed(let code, let reason):
                    // Through the connection: if the hub is already closing this socket (a stop races the
                    // worker's own close), its close is the one the client gets.
                    await conn.terminate(event: nil, code: sendable(code), reason: reason ?? "")
                case .lost(let detail):
                    guard !relay.isFinalized else { return }
                    await env.hub.detach(conn)
                    await workerLost(conn, relay: relay, outbound: outbound, handle: handle, detail: detail, env: env, logger: sessionLogger)
                case .unresponsive(let detail):
                    guard !relay.isFinalized else { return }
                    // The hub tells and closes every socket of this worker, this one included.
                    await env.hub.workerUnresponsive(handle.id, detail: detail)
                    await env.hub.detach(conn)
                }
                // A client that never answers the close must not keep the socket.
                try? await Task.sleep(for: .seconds(5))
                try? await channel.close()
            }
            do {
                for try await _ in inbound {}
            } catch {}
            await env.hub.detach(conn)
            if !relay.workerEnded {
                // The client left first; the relay passed its close frame on: give the worker a moment to answer.
                await relay.awaitWorkerEnd(within: .seconds(3))
            }
            relay.closeUpstream()
            // Completes what the children still wait for; the socket is gone, so no close guard either.
            relay.finalize()
            group.cancelAll()
        }
    }

    /// The worker went away without a close: say why (waiting briefly for the backend's reason).
    static func workerLost(
        _ conn: ClientConnection, relay: FrameRelay, outbound: WebSocketOutboundWriter, handle: WorkerHandle, detail: String,
        env: ProxyEnvironment, logger: Logger
    ) async {
        let death = await env.hub.deathReason(of: handle.id, wait: .seconds(2))
        let event =
            death.map { WorkerHub.deathEvent($0, sessionID: conn.sessionID) }
            ?? LabEvents.error("Lost the connection to your lab worker (\(detail)). Your files are kept; reconnect to continue.", sessionID: conn.sessionID)
        logger.warning("worker connection lost", metadata: ["detail": "\(detail)", "death": "\(death?.reason ?? "unknown")"])
        await conn.terminate(event: event, code: .unexpectedServerError, reason: "worker stopped")
    }

    /// Activity bookkeeping for one worker → client message (its first frame).
    static func track(_ data: ByteBuffer, fin: Bool, conn: ClientConnection, metrics: LabMetrics) {
        guard let type = FrameInspector.leadingType(data) else { return }
        var ackText: String?
        var requestKey: String?
        // Frames over FrameInspector.parseLimit are never parsed here (this runs on the event loop): a
        // large ack echoes a long prompt, so it is a turn; a large prompt's id is found by a scan.
        let small = data.readableBytes <= FrameInspector.parseLimit
        switch type {
        case "input_ack":
            guard fin else { return }
            ackText = small ? FrameInspector.object(data)?["text"]?.stringValue : nil
        case "permission_request", "permission_cancelled":
            guard fin else { return }
            requestKey = FrameInspector.requestKey(small ? FrameInspector.object(data)?["request_id"] : FrameInspector.scanRequestID(data))
        case "response", "error", "session_end":
            break
        default:
            return
        }
        switch conn.workerEvent(type, ackText: ackText, requestKey: requestKey, now: .now) {
        case .turnStarted?: metrics.turnStarted(tool: conn.tool)
        case .permissionRequested?: metrics.permissionRequested(tool: conn.tool)
        case .permissionResolved(let waited)?: metrics.permissionResolved(tool: conn.tool, waited: waited)
        case nil: break
        }
    }

    /// What a client frame means for activity: keep-alives are not activity; permission answers resolve
    /// a pending prompt.
    static func classifyClient(_ data: ByteBuffer) -> ConnectionActivity.ClientFrame {
        if data.readableBytes <= 256, FrameInspector.contains(data, "ping") || FrameInspector.contains(data, "pong") {
            if let t = FrameInspector.object(data)?["type"]?.stringValue, t == "ping" || t == "pong" { return .keepalive }
        }
        // Permission answers are small; large frames (pasted text, images) are not worth scanning.
        if data.readableBytes <= 16 * 1024, FrameInspector.contains(data, "permission_response"), let o = FrameInspector.object(data),
            o["type"]?.stringValue == "permission_response"
        {
            return .permissionResponse(FrameInspector.requestKey(o["request_id"]))
        }
        return .other
    }

    // ---- helpers ---------------------------------------------------------------------------

    /// A handshake refusal: one `error` event, then a normal close (as the worker does).
    static func refuse(_ relay: FrameRelay, _ outbound: WebSocketOutboundWriter, _ text: String, sessionID: String) async {
        _ = try? await relay.inject(LabEvents.error(text, sessionID: sessionID).encoded()).get()
        try? await outbound.close(.normalClosure, reason: nil)
    }

    /// A controller-side failure: `error` event, then close 1011.
    static func fail(_ relay: FrameRelay, _ outbound: WebSocketOutboundWriter, _ text: String, sessionID: String, reason: String) async {
        _ = try? await relay.inject(LabEvents.error(text, sessionID: sessionID).encoded()).get()
        try? await outbound.close(.unexpectedServerError, reason: reason)
    }

    /// Close codes that may be sent on the wire (1005, 1006, 1015 and unassigned ones may not).
    static func sendable(_ code: WebSocketErrorCode) -> WebSocketErrorCode {
        let n = Int(UInt16(webSocketErrorCode: code))
        switch n {
        case 1000...1003, 1007...1011, 1012...1014, 3000...4999: return code
        default: return .normalClosure
        }
    }
}
