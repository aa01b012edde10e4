import HummingbirdWSClient
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
    public var pingInterval: Duration
    public var handshakeTimeout: Duration
    public var connectTimeout: Duration
    public var metrics: LabMetrics
    public var logger: Logger
}

/// One user WebSocket: handshake → firewall → worker (progress as `lab.*`) → bidirectional proxy.
///
/// The handshake is read and checked *before* any worker is started, so a refused handshake costs
/// nothing. Frames are forwarded one by one (fragmentation kept); each direction awaits the write
/// before reading the next frame, so a slow reader slows the other side down and nothing is buffered
/// beyond one frame (bounded by `LAB_MAX_FRAME_BYTES`). Close codes and reasons pass through both ways.
enum ProxySession {
    static let connectionIDs = Atomic<Int>(0)

    static func run(user: UserID, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel, env: ProxyEnvironment) async {
        var logger = env.logger
        logger[metadataKey: "user"] = "\(user)"
        let sniffer = await CloseFrameSniffer.install(on: channel)
        let cursor = InboundCursor(inbound.makeAsyncIterator())

        // ---- 1. the handshake, bounded in time --------------------------------------------
        let timedOut = Atomic<Bool>(false)
        let watchdog = Task {
            try await Task.sleep(for: env.handshakeTimeout)
            timedOut.store(true, ordering: .sequentiallyConsistent)
            try? await outbound.write(.custom(textFrame(LabEvents.error("Handshake timeout: first message must be session config JSON", sessionID: ""))))
            try? await outbound.close(.normalClosure, reason: nil)
            try? await Task.sleep(for: .seconds(2))
            try? await channel.close()
        }
        let first = await readFirstMessage(cursor, limit: env.maxFrameBytes)
        watchdog.cancel()
        if timedOut.load(ordering: .sequentiallyConsistent) { return }
        let handshakeBytes: [UInt8]
        switch first {
        case .closed:
            return
        case .binary:
            await refuse(outbound, "Invalid handshake: first message must be a JSON text frame", sessionID: "")
            return
        case .tooLarge:
            try? await outbound.close(.messageTooLarge, reason: "handshake too large")
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
            await fail(outbound, "Could not prepare your workspace: \(error)", sessionID: "", reason: "workspace unavailable")
            return
        }
        let resolver = FolderResolver(hostHome: hostHome, workerHome: env.workerHome(user))
        let accepted: HandshakeFirewall.Accepted
        switch env.firewall.inspect(handshakeBytes, folders: resolver) {
        case .failure(let refusal):
            env.metrics.handshakeRefused(refusal.field)
            logger.notice("handshake refused", metadata: ["field": "\(refusal.field)", "text": "\(refusal.text)"])
            await refuse(outbound, refusal.text, sessionID: refusal.sessionID)
            return
        case .success(let a):
            accepted = a
        }
        let sid = accepted.sessionID
        logger[metadataKey: "session"] = "\(sid)"

        // ---- 3. the worker, with progress streamed to the client ------------------------------
        let conn = ClientConnection(
            id: connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue, user: user, tool: accepted.tool, sessionID: sid,
            outbound: outbound, now: .now)
        let (progress, progressSink) = AsyncStream<LabProgress>.makeStream(bufferingPolicy: .bufferingNewest(32))
        let progressWriter = Task {
            for await p in progress { try? await outbound.write(.custom(textFrame(p.event(sessionID: sid)))) }
        }
        let handle: WorkerHandle
        do {
            handle = try await env.hub.ensure(user, attaching: conn, progress: { progressSink.yield($0) })
        } catch {
            progressSink.finish()
            await progressWriter.value
            logger.error("no worker for session", metadata: ["error": "\(error)"])
            await fail(outbound, "Could not start your lab worker: \(error)", sessionID: sid, reason: "worker unavailable")
            return
        }
        progressSink.finish()
        await progressWriter.value

        // ---- 4. the proxy ----------------------------------------------------------------------
        let outcome = await proxy(conn: conn, handle: handle, handshake: accepted.encoded, cursor: cursor, sniffer: sniffer, env: env, logger: logger)
        await env.hub.detach(conn)
        switch outcome {
        case .clientGone:
            break
        case .workerClosed(let close):
            if let close {
                try? await outbound.close(sendable(close.closeCode), reason: close.reason)
            } else {
                try? await outbound.close(.normalClosure, reason: nil)
            }
        case .workerLost(let detail):
            let death = await env.hub.deathReason(of: handle.id, wait: .seconds(2))
            let event =
                death.map { WorkerHub.deathEvent($0, sessionID: sid) }
                ?? LabEvents.error("Lost the connection to your lab worker (\(detail)). Your files are kept; reconnect to continue.", sessionID: sid)
            logger.warning("worker connection lost", metadata: ["detail": "\(detail)", "death": "\(death?.reason ?? "unknown")"])
            await conn.terminate(event: event, code: .unexpectedServerError, reason: "worker stopped")
        }
    }

    enum Outcome {
        case clientGone
        case workerClosed(WebSocketCloseFrame?)
        case workerLost(String)
    }

    enum PumpEnd: Sendable {
        case clientClosed
        case clientFailed
        case workerClosed
        case workerFailed(String)
    }

    static func proxy(
        conn: ClientConnection, handle: WorkerHandle, handshake: [UInt8], cursor: InboundCursor, sniffer: CloseFrameSniffer?,
        env: ProxyEnvironment, logger: Logger
    ) async -> Outcome {
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)
        let configuration = WebSocketClientConfiguration(
            maxFrameSize: env.maxFrameBytes, closeTimeout: .seconds(5),
            autoPing: env.pingInterval > .zero ? .enabled(timePeriod: env.pingInterval) : .disabled)
        let firstEnd = Mutex<PumpEnd?>(nil)
        let entered = Atomic<Bool>(false)
        var attempt = 0
        while true {
            attempt += 1
            do {
                let close = try await WebSocketClient.connect(url: handle.address.url, configuration: configuration, logger: quiet) { upIn, upOut, _ in
                    entered.store(true, ordering: .sequentiallyConsistent)
                    await conn.inject(LabEvents.status("lab.ready", "Connected to your lab worker", sessionID: conn.sessionID))
                    try await upOut.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: handshake))))
                    let end = await pump(conn: conn, upIn: upIn, upOut: upOut, cursor: cursor, sniffer: sniffer, env: env)
                    firstEnd.withLock { $0 = end }
                }
                switch firstEnd.withLock({ $0 }) {
                case .clientClosed?, .clientFailed?: return .clientGone
                case .workerClosed?: return close == nil ? .workerLost("closed without a close frame") : .workerClosed(close)
                case .workerFailed(let detail)?: return .workerLost(detail)
                case nil: return .workerLost("session ended")
                }
            } catch {
                if let end = firstEnd.withLock({ $0 }) {
                    switch end {
                    case .clientClosed, .clientFailed: return .clientGone
                    case .workerClosed: return .workerLost("\(error)")
                    case .workerFailed(let detail): return .workerLost(detail)
                    }
                }
                // Could not even connect: retry briefly unless the worker is known dead.
                if !entered.load(ordering: .sequentiallyConsistent), attempt < 3, await env.hub.isAlive(handle.id) {
                    try? await Task.sleep(for: .milliseconds(100 * attempt))
                    continue
                }
                return .workerLost("\(error)")
            }
        }
    }

    /// Runs both directions until one side ends, then finishes the other one politely.
    static func pump(
        conn: ClientConnection, upIn: WebSocketInboundStream, upOut: WebSocketOutboundWriter, cursor: InboundCursor,
        sniffer: CloseFrameSniffer?, env: ProxyEnvironment
    ) async -> PumpEnd {
        let metrics = env.metrics
        let hub = env.hub
        return await withTaskGroup(of: PumpEnd.self) { group in
            group.addTask {  // client → worker
                do {
                    while let frame = try await cursor.next() {
                        let now = ContinuousClock.now
                        let (change, cancelled) = conn.clientFrame(classifyClient(frame), now: now)
                        if cancelled { Task { await hub.cancelWarning(conn.user) } }
                        if case .permissionResolved(let waited)? = change { metrics.permissionResolved(tool: conn.tool, waited: waited) }
                        metrics.framesToWorker.increment()
                        metrics.bytesToWorker.increment(by: Int64(frame.data.readableBytes))
                        do {
                            try await upOut.write(.custom(WebSocketFrame(fin: frame.fin, opcode: frame.opcode.nio, data: frame.data)))
                        } catch {
                            return .workerFailed("write to worker failed: \(error)")
                        }
                    }
                    return .clientClosed
                } catch {
                    return .clientFailed
                }
            }
            group.addTask {  // worker → client
                var midMessage = false
                do {
                    for try await frame in upIn {
                        if !midMessage, frame.opcode == .text { track(frame, conn: conn, metrics: metrics) }
                        midMessage = !frame.fin
                        metrics.framesToClient.increment()
                        metrics.bytesToClient.increment(by: Int64(frame.data.readableBytes))
                        do {
                            try await conn.forward(WebSocketFrame(fin: frame.fin, opcode: frame.opcode.nio, data: frame.data))
                        } catch {
                            return .clientFailed
                        }
                    }
                    return .workerClosed
                } catch {
                    return .workerFailed("\(error)")
                }
            }
            let first = await group.next() ?? .workerClosed
            switch first {
            case .clientClosed, .clientFailed:
                // Pass the client's close code on; the worker answers and its pump ends (bounded).
                let close = sniffer?.close
                try? await upOut.close(close.map { sendable($0.code) } ?? .normalClosure, reason: close?.reason)
                group.addTask {
                    try? await Task.sleep(for: .seconds(3))
                    return .clientClosed
                }
                _ = await group.next()
                group.cancelAll()
            case .workerClosed, .workerFailed:
                group.cancelAll()
            }
            return first
        }
    }

    /// Activity bookkeeping for one worker → client message (its first frame).
    static func track(_ frame: WebSocketDataFrame, conn: ClientConnection, metrics: LabMetrics) {
        guard let type = FrameInspector.leadingType(frame.data) else { return }
        var ackText: String?
        var requestKey: String?
        switch type {
        case "input_ack":
            guard frame.fin else { return }
            ackText = FrameInspector.object(frame.data)?["text"]?.stringValue
        case "permission_request", "permission_cancelled":
            guard frame.fin else { return }
            requestKey = FrameInspector.requestKey(FrameInspector.object(frame.data)?["request_id"])
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
    static func classifyClient(_ frame: WebSocketDataFrame) -> ConnectionActivity.ClientFrame {
        guard frame.opcode == .text, frame.fin else { return .other }
        let data = frame.data
        if data.readableBytes <= 256, FrameInspector.contains(data, "ping") || FrameInspector.contains(data, "pong") {
            if let t = FrameInspector.object(data)?["type"]?.stringValue, t == "ping" || t == "pong" { return .keepalive }
        }
        if FrameInspector.contains(data, "permission_response"), let o = FrameInspector.object(data), o["type"]?.stringValue == "permission_response" {
            return .permissionResponse(FrameInspector.requestKey(o["request_id"]))
        }
        return .other
    }

    // ---- helpers ---------------------------------------------------------------------------

    enum FirstMessage {
        case text([UInt8])
        case binary
        case tooLarge
        case closed
    }

    /// Reads the first complete message (reassembling fragments, bounded by `limit`).
    static func readFirstMessage(_ cursor: InboundCursor, limit: Int) async -> FirstMessage {
        var bytes: [UInt8] = []
        var isText: Bool?
        do {
            while let frame = try await cursor.next() {
                if isText == nil {
                    guard frame.opcode != .continuation else { return .binary }
                    isText = frame.opcode == .text
                }
                if isText == false {
                    if frame.fin { return .binary }
                    continue
                }
                guard bytes.count + frame.data.readableBytes <= limit else { return .tooLarge }
                bytes.append(contentsOf: frame.data.readableBytesView)
                if frame.fin { return .text(bytes) }
            }
        } catch {}
        return .closed
    }

    /// A handshake refusal: one `error` event, then a normal close (as the worker does).
    static func refuse(_ outbound: WebSocketOutboundWriter, _ text: String, sessionID: String) async {
        try? await outbound.write(.custom(textFrame(LabEvents.error(text, sessionID: sessionID))))
        try? await outbound.close(.normalClosure, reason: nil)
    }

    /// A controller-side failure: `error` event, then close 1011.
    static func fail(_ outbound: WebSocketOutboundWriter, _ text: String, sessionID: String, reason: String) async {
        try? await outbound.write(.custom(textFrame(LabEvents.error(text, sessionID: sessionID))))
        try? await outbound.close(.unexpectedServerError, reason: reason)
    }

    static func textFrame(_ event: RelayEvent) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: event.encoded()))
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

/// The client's inbound frames, read first by the handshake step and then by the client → worker pump
/// (strictly one after the other, never concurrently; hence `@unchecked`).
final class InboundCursor: @unchecked Sendable {
    private var iterator: WebSocketInboundStream.AsyncIterator
    init(_ iterator: WebSocketInboundStream.AsyncIterator) { self.iterator = iterator }
    func next() async throws -> WebSocketDataFrame? { try await iterator.next() }
}

extension WebSocketDataFrame.Opcode {
    var nio: WebSocketOpcode {
        switch self {
        case .text: .text
        case .binary: .binary
        case .continuation: .continuation
        }
    }
}
