import NIOCore
import NIOWebSocket
import RelayProtocol
import Synchronization

/// The proxy's data path, done in NIO channel handlers on one event loop.
///
/// Both sockets of a session — the user's (server side) and the worker's (client side, created on the same
/// event loop) — are served by this one object, so forwarding a frame is a plain `write` on the other
/// channel: no task switch, no actor hop, no per-frame allocation beyond the frame itself. Back-pressure
/// is NIO's: when one side stops being writable, reading from the other side pauses (`autoRead`), so a slow
/// reader slows the other end down and nothing is buffered beyond the socket buffers.
///
/// The relay is installed on the user's channel as part of the upgrade, before any frame is read
/// (``install(on:maxMessageBytes:maxHandshakeBytes:handshakeTimeout:metrics:)``), so it sees every client
/// frame; what it does with each is decided by its ``FrameRelayStateMachine``. Its socket state lives in
/// a `NIOLoopBoundBox`: the session's task reaches it only through methods that hop to the loop.
final class FrameRelay: Sendable {
    typealias FirstMessage = FrameRelayStateMachine.FirstMessage

    let eventLoop: any EventLoop
    let client: any Channel
    let metrics: LabMetrics

    /// How the worker side ended.
    enum UpstreamEnd: Sendable {
        case closed(code: WebSocketErrorCode, reason: String?)
        case lost(String)
        /// The socket is up but the worker does not answer (a missed pong): it is hung.
        case unresponsive(String)
    }
    let upstreamEnd: EventLoopPromise<UpstreamEnd>

    /// A protocol violation by the client after the handshake (nil: the session ended without one).
    enum Violation: Sendable { case invalidUTF8 }
    let violation: EventLoopPromise<Violation?>

    private let handshakePromise: EventLoopPromise<FirstMessage>
    /// The first client message (the handshake), once it is complete.
    var handshake: EventLoopFuture<FirstMessage> { handshakePromise.futureResult }

    /// Readable from any thread: the worker side has ended / the session is over.
    private let flags = Atomic<UInt8>(0)
    var workerEnded: Bool { flags.load(ordering: .acquiring) & 1 != 0 }
    var isFinalized: Bool { flags.load(ordering: .acquiring) & 2 != 0 }

    /// What only the event loop touches.
    private final class Sockets {
        var machine: FrameRelayStateMachine
        var upstream: (any Channel)?
        /// Below the worker channel's frame encoder: where ready-made frame bytes are written.
        var rawWriter: ChannelHandlerContext?
        var connection: ClientConnection?
        var handshakeTimer: Scheduled<Void>?

        init(machine: FrameRelayStateMachine) { self.machine = machine }
    }
    private let sockets: NIOLoopBoundBox<Sockets>

    private init(client: any Channel, maxMessageBytes: Int, maxHandshakeBytes: Int, metrics: LabMetrics) {
        self.client = client
        self.eventLoop = client.eventLoop
        self.metrics = metrics
        self.handshakePromise = client.eventLoop.makePromise()
        self.upstreamEnd = client.eventLoop.makePromise()
        self.violation = client.eventLoop.makePromise()
        self.sockets = NIOLoopBoundBox(
            Sockets(machine: FrameRelayStateMachine(maxQueuedBytes: maxMessageBytes, maxHandshakeBytes: maxHandshakeBytes)),
            eventLoop: client.eventLoop)
        metrics.relays.increment()
    }

    deinit { metrics.relays.decrement() }

    /// Creates the relay and puts its handler on the user's channel, after the frame decoder. Runs on the
    /// channel's event loop during the upgrade, before any frame is read. A handshake not complete within
    /// `handshakeTimeout` becomes `.timedOut`.
    static func install(
        on client: any Channel, maxMessageBytes: Int, maxHandshakeBytes: Int, handshakeTimeout: TimeAmount, metrics: LabMetrics
    ) throws -> FrameRelay {
        let relay = FrameRelay(client: client, maxMessageBytes: maxMessageBytes, maxHandshakeBytes: maxHandshakeBytes, metrics: metrics)
        try client.pipeline.syncOperations.addHandler(ClientSideHandler(relay: relay))
        relay.sockets.value.handshakeTimer = client.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) {
            if relay.sockets.value.machine.handshakeDeadline() { relay.handshakePromise.succeed(.timedOut) }
        }
        return relay
    }

    /// A one-line picture of the relay's state, for diagnostics.
    func describe() async -> String {
        (try? await eventLoop.submit { self.sockets.value.machine.description }.get()) ?? "?"
    }

    // ---- client side (on the event loop, from ClientSideHandler) ------------------------------

    func clientData(_ frame: WebSocketFrame) {
        let s = sockets.value
        switch s.machine.clientData(frame) {
        case .captured(let first, let pause):
            if let first { settleHandshake(first) }
            if pause { client.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
        case .forward:
            forwardToWorker(frame, s)
        case .fail(let report):
            metrics.protocolViolation("invalid_utf8")
            if report { violation.succeed(.invalidUTF8) }
        case .drop:
            break
        }
    }

    private func settleHandshake(_ first: FirstMessage) {
        sockets.value.handshakeTimer?.cancel()
        switch first {
        case .tooLarge: metrics.protocolViolation("handshake_too_large")
        case .invalidUTF8: metrics.protocolViolation("invalid_utf8")
        default: break
        }
        handshakePromise.succeed(first)
    }

    func clientClosed(code: WebSocketErrorCode?, reason: String?) {
        let s = sockets.value
        let action = s.machine.clientClosed(code: code, reason: reason)
        if action.settleHandshake { settleHandshake(.closed) }
        if action.forwardClose, let upstream = s.upstream {
            upstream.writeAndFlush(Self.closeFrame(ProxySession.sendable(code ?? .normalClosure), reason: reason, masked: true), promise: nil)
        }
    }

    /// A frame the machine let through, on its way to the worker: still masked, it goes out as received
    /// under a new header (``WireFrames``); only small text frames are unmasked, to be classified.
    private func forwardToWorker(_ frame: WebSocketFrame, _ s: Sockets) {
        guard let upstream = s.upstream else { return }
        if let connection = s.connection {
            // Only small text frames can be keep-alives or permission answers: only those are read.
            let kind: ConnectionActivity.ClientFrame =
                frame.opcode == .text && frame.fin && frame.data.readableBytes <= 16 * 1024
                ? ProxySession.classifyClient(WireFrames.plain(frame)) : .other
            // A voided idle warning is reported to the hub by the connection itself (its inbox, in order).
            let (change, _) = connection.clientFrame(kind, now: .now)
            if case .permissionResolved(let waited)? = change { metrics.permissionResolved(tool: connection.tool, waited: waited) }
        }
        metrics.framesToWorker.increment()
        metrics.bytesToWorker.increment(by: Int64(frame.data.readableBytes))
        if let key = frame.maskKey, let rawWriter = s.rawWriter {
            let header = WireFrames.maskedHeader(fin: frame.fin, opcode: frame.opcode, length: frame.data.readableBytes, key: key)
            rawWriter.write(NIOAny(header), promise: nil)
            rawWriter.write(NIOAny(frame.data), promise: nil)
        } else {
            upstream.write(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, maskKey: .random(), data: WireFrames.plain(frame)), promise: nil)
        }
        if !upstream.isWritable, s.machine.workerBlocked() {
            client.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
    }

    func clientReadComplete() {
        if case .live = sockets.value.machine.state { sockets.value.upstream?.flush() }
    }

    func clientWritabilityChanged() {
        // The client can take more: resume reading from the worker.
        if client.isWritable, let upstream = sockets.value.upstream {
            upstream.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
    }

    // ---- going live ----------------------------------------------------------------------------

    /// Switches to forwarding: the rewritten handshake first, then whatever the client sent meanwhile.
    func goLive(upstream: any Channel, handshake: [UInt8], connection: ClientConnection) {
        eventLoop.execute {
            let s = self.sockets.value
            guard case .start(let queued) = s.machine.goLive() else {
                upstream.close(promise: nil)
                return
            }
            s.upstream = upstream
            s.rawWriter = try? upstream.pipeline.syncOperations.context(handlerType: RawWriteHandler.self)
            s.connection = connection
            upstream.write(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: handshake)), promise: nil)
            for frame in queued {
                guard !s.machine.clientFailed else { break }
                self.clientData(frame)
            }
            upstream.flush()
            if let close = s.machine.clientClose {
                upstream.writeAndFlush(Self.closeFrame(ProxySession.sendable(close.code), reason: close.reason, masked: true), promise: nil)
            }
            if upstream.isWritable, s.machine.workerWritable() {
                self.client.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            }
        }
    }

    // ---- worker side (on the event loop, from UpstreamSideHandler) ---------------------------------

    func workerFrame(_ frame: WebSocketFrame) {
        let s = sockets.value
        switch frame.opcode {
        case .text, .binary, .continuation:
            guard case .forward(let track, let inject) = s.machine.workerData(opcode: frame.opcode, fin: frame.fin) else { return }
            if track, let connection = s.connection { ProxySession.track(frame.data, fin: frame.fin, conn: connection, metrics: metrics) }
            metrics.framesToClient.increment()
            metrics.bytesToClient.increment(by: Int64(frame.data.readableBytes))
            client.write(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.data), promise: nil)
            for q in inject { client.write(WebSocketFrame(fin: true, opcode: .text, data: q), promise: nil) }
            if !client.isWritable { s.upstream?.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
        case .ping:
            s.upstream?.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.data), promise: nil)
        case .pong:
            s.machine.workerPong()
        case .connectionClose:
            var data = frame.data
            let code = data.readInteger(as: UInt16.self).map { WebSocketErrorCode(codeNumber: Int($0)) } ?? .normalClosure
            let reason = data.readableBytes > 0 ? data.readString(length: data.readableBytes) : nil
            // Answer the worker's close (it then closes the socket) and report it.
            s.upstream?.writeAndFlush(Self.closeFrame(.normalClosure, reason: nil, masked: true), promise: nil)
            workerEnded(.closed(code: code, reason: reason))
        default:
            break
        }
    }

    func workerReadComplete() { client.flush() }

    func workerWritabilityChanged() {
        let s = sockets.value
        if let upstream = s.upstream, upstream.isWritable, s.machine.workerWritable() {
            client.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
    }

    func workerInactive() { workerEnded(.lost("the connection to the worker dropped")) }

    func workerError(_ error: any Error) { workerEnded(.lost("\(error)")) }

    private func workerEnded(_ end: UpstreamEnd) {
        guard sockets.value.machine.workerEnded() else { return }
        flags.bitwiseOr(1, ordering: .releasing)
        upstreamEnd.succeed(end)
    }

    // ---- the session's side (any thread) -----------------------------------------------------------

    /// Ends the relay whatever state it is in: pending promises are completed (NIO insists), the worker
    /// socket is closed. Called once the session is over.
    func finalize() {
        flags.bitwiseOr(2, ordering: .releasing)
        eventLoop.execute {
            let s = self.sockets.value
            let action = s.machine.finalize()
            if action.settleHandshake { self.settleHandshake(.closed) }
            if action.settleEnd {
                self.flags.bitwiseOr(1, ordering: .releasing)
                self.upstreamEnd.succeed(.lost("session ended"))
            }
            if action.settleViolation { self.violation.succeed(nil) }
            s.handshakeTimer?.cancel()
            s.upstream?.close(promise: nil)
            // The connection holds this relay (for injected events): drop the cycle, and the worker
            // channel with it, or every finished session stays in memory with both its sockets.
            s.upstream = nil
            s.rawWriter = nil
            s.connection = nil
        }
    }

    /// Returns once the worker side has ended, or after `timeout`.
    func awaitWorkerEnd(within timeout: TimeAmount) async {
        let done = eventLoop.makePromise(of: Void.self)
        let timer = eventLoop.scheduleTask(in: timeout) { done.succeed() }
        upstreamEnd.futureResult.whenComplete { _ in
            timer.cancel()
            done.succeed()  // a second completion is ignored
        }
        try? await done.futureResult.get()
    }

    /// Keep-alive toward the worker: a ping every `interval`; no pong by the next one means the worker
    /// is gone.
    func startPinging(every interval: TimeAmount) {
        guard interval > .zero else { return }
        eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            let s = self.sockets.value
            switch s.machine.pingTick() {
            case .skip:
                break
            case .stop:
                task.cancel()
            case .workerLost:
                task.cancel()
                self.workerEnded(.unresponsive("the worker stopped answering pings"))
                s.upstream?.close(promise: nil)
            case .sendPing:
                s.upstream?.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: ByteBuffer(string: "lab")), promise: nil)
            }
        }
    }

    /// Writes a controller event to the client between whole messages.
    func inject(_ bytes: [UInt8]) -> EventLoopFuture<Void> {
        eventLoop.submit {
            if let now = self.sockets.value.machine.inject(ByteBuffer(bytes: bytes)) {
                self.client.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: now), promise: nil)
            }
        }
    }

    /// Closes the worker socket (after the client left), politely if it is still open.
    func closeUpstream() {
        eventLoop.execute {
            let s = self.sockets.value
            s.machine.close()
            s.upstream?.close(promise: nil)
        }
    }

    static func closeFrame(_ code: WebSocketErrorCode, reason: String?, masked: Bool) -> WebSocketFrame {
        var buffer = ByteBuffer()
        buffer.write(webSocketErrorCode: code)
        if let reason { buffer.writeString(String(reason.utf8.prefix(120)) ?? "") }
        return WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: masked ? .random() : nil, data: buffer)
    }
}
