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
/// Life of a session:
/// 1. *capturing* — installed as soon as the WebSocket is upgraded; client data frames are queued (bounded:
///    reading pauses past `LAB_MAX_FRAME_BYTES`) and the first message is handed to the session as the
///    handshake. Frames that reached the framework's own buffer before the handler was installed are
///    recovered by the session (see ``sentinel``) and put back in front of the queue.
/// 2. *live* — after the worker's socket is up: the rewritten handshake goes first, then the queue, then
///    every frame as it comes, both ways, with activity tracking on the way.
/// 3. *closed* — a close frame, or a lost socket, is reported to the session through ``upstreamEnd``.
///
/// Every mutable field is touched only on `eventLoop` (hence `@unchecked Sendable`).
final class FrameRelay: @unchecked Sendable {
    let eventLoop: any EventLoop
    let client: any Channel
    let maxMessageBytes: Int
    let metrics: LabMetrics
    /// A per-session random binary frame pushed into the framework's inbound buffer when this relay is
    /// installed: whatever the session reads from that buffer before the sentinel arrived earlier.
    let sentinel: ByteBuffer

    enum Mode { case capturing, live, closed }
    private(set) var mode = Mode.capturing
    private var queued = CircularBuffer<WebSocketFrame>()
    private var queuedBytes = 0
    private var readingPaused = false
    private var handshakePromise: EventLoopPromise<ProxySession.FirstMessage>
    private var handshakeDone = false
    private var upstream: (any Channel)?
    /// Below the worker channel's frame encoder: where ready-made frame bytes are written.
    private var rawWriter: ChannelHandlerContext?
    private var connection: ClientConnection?
    private var hub: WorkerHub?
    /// The client's close code and reason, when it sent one.
    private(set) var clientClose: (code: WebSocketErrorCode, reason: String?)?
    /// A fragmented worker → client message is being forwarded: injected events wait for its end.
    private var toClientMidMessage = false
    private var injectQueue: [ByteBuffer] = []
    private var fromWorkerMidMessage = false
    private var awaitingPong = false
    private var upstreamEndDone = false
    /// Readable from any thread: the worker side has ended / the session is over.
    private let flags = Atomic<UInt8>(0)
    var workerEnded: Bool { flags.load(ordering: .acquiring) & 1 != 0 }
    var isFinalized: Bool { flags.load(ordering: .acquiring) & 2 != 0 }

    /// How the worker side ended.
    enum UpstreamEnd: Sendable {
        case closed(code: WebSocketErrorCode, reason: String?)
        case lost(String)
    }
    let upstreamEnd: EventLoopPromise<UpstreamEnd>

    init(client: any Channel, maxMessageBytes: Int, metrics: LabMetrics) {
        self.client = client
        self.eventLoop = client.eventLoop
        self.maxMessageBytes = maxMessageBytes
        self.metrics = metrics
        var rng = SystemRandomNumberGenerator()
        self.sentinel = ByteBuffer(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })
        self.handshakePromise = client.eventLoop.makePromise()
        self.upstreamEnd = client.eventLoop.makePromise()
    }

    /// The first client message (the handshake), once it is complete.
    var handshake: EventLoopFuture<ProxySession.FirstMessage> { handshakePromise.futureResult }

    // ---- installation ------------------------------------------------------------------------

    /// Inserts the client-side handler right after the WebSocket frame decoder, then pushes the
    /// sentinel down the pipeline (behind any frame already buffered by the framework).
    func install() async throws {
        try await eventLoop.submit {
            let decoder = try self.client.pipeline.syncOperations.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
            let handler = ClientSideHandler(relay: self)
            try self.client.pipeline.syncOperations.addHandler(handler, position: .after(decoder))
            let ctx = try self.client.pipeline.syncOperations.context(handler: handler)
            ctx.fireChannelRead(NIOAny(WebSocketFrame(fin: true, opcode: .binary, data: self.sentinel)))
            // The framework's channel buffers reads until a read-complete: deliver the sentinel now.
            ctx.fireChannelReadComplete()
        }.get()
    }

    /// A one-line picture of the capture state, for diagnostics.
    func describe() async -> String {
        (try? await eventLoop.submit { "mode=\(self.mode) queued=\(self.queued.count) bytes=\(self.queuedBytes) handshakeDone=\(self.handshakeDone) paused=\(self.readingPaused)" }.get()) ?? "?"
    }

    /// Frames the session read from the framework's buffer before the sentinel: they came first.
    func prependEarly(_ frames: [WebSocketFrame]) {
        eventLoop.execute {
            for f in frames.reversed() {
                self.queued.prepend(f)
                self.queuedBytes += f.data.readableBytes
            }
            self.extractHandshake()
        }
    }

    // ---- client side -------------------------------------------------------------------------

    fileprivate func clientData(_ frame: WebSocketFrame) {
        switch mode {
        case .capturing:
            queued.append(frame)
            queuedBytes += frame.data.readableBytes
            if !handshakeDone { extractHandshake() }
            if queuedBytes > maxMessageBytes, !readingPaused {
                readingPaused = true
                client.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            }
        case .live:
            forwardToWorker(frame)
        case .closed:
            break
        }
    }

    /// Takes the first complete message off the queue (text: reassembled; binary: refused by the session).
    private func extractHandshake() {
        guard !handshakeDone, let first = queued.first else { return }
        if first.opcode == .binary || first.opcode == .continuation {
            handshakeDone = true
            var dropped = 0
            while let f = queued.first {
                queued.removeFirst()
                dropped += f.data.readableBytes
                if f.fin { break }
            }
            queuedBytes -= dropped
            handshakePromise.succeed(.binary)
            return
        }
        var total = 0
        var count = 0
        var complete = false
        for f in queued {
            count += 1
            total += f.data.readableBytes
            if total > maxMessageBytes {
                handshakeDone = true
                handshakePromise.succeed(.tooLarge)
                return
            }
            if f.fin {
                complete = true
                break
            }
        }
        guard complete else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        for _ in 0..<count {
            let f = queued.removeFirst()
            bytes.append(contentsOf: Self.plain(f).readableBytesView)
        }
        queuedBytes -= total
        handshakeDone = true
        handshakePromise.succeed(.text(bytes))
    }

    fileprivate func clientClosed(code: WebSocketErrorCode?, reason: String?) {
        if let code { clientClose = (code, reason) }
        if !handshakeDone {
            handshakeDone = true
            handshakePromise.succeed(.closed)
        }
        if mode == .live, let upstream {
            let c = ProxySession.sendable(code ?? .normalClosure)
            upstream.writeAndFlush(Self.closeFrame(c, reason: reason, masked: true), promise: nil)
        }
    }

    private func forwardToWorker(_ frame: WebSocketFrame) {
        guard let upstream else { return }
        if let connection {
            // Only small text frames can be keep-alives or permission answers: only those are read.
            let kind: ConnectionActivity.ClientFrame =
                frame.opcode == .text && frame.fin && frame.data.readableBytes <= 16 * 1024
                ? ProxySession.classifyClient(Self.plain(frame)) : .other
            let (change, cancelled) = connection.clientFrame(kind, now: .now)
            if cancelled, let hub { Task { await hub.cancelWarning(connection.user) } }
            if case .permissionResolved(let waited)? = change { metrics.permissionResolved(tool: connection.tool, waited: waited) }
        }
        metrics.framesToWorker.increment()
        metrics.bytesToWorker.increment(by: Int64(frame.data.readableBytes))
        if let key = frame.maskKey, let rawWriter {
            let header = WireFrames.maskedHeader(fin: frame.fin, opcode: frame.opcode, length: frame.data.readableBytes, key: key)
            rawWriter.write(NIOAny(header), promise: nil)
            rawWriter.write(NIOAny(frame.data), promise: nil)
        } else {
            upstream.write(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, maskKey: .random(), data: Self.plain(frame)), promise: nil)
        }
        if !upstream.isWritable, !readingPaused {
            readingPaused = true
            client.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
    }

    /// The payload in clear.
    static func plain(_ frame: WebSocketFrame) -> ByteBuffer {
        guard let key = frame.maskKey else { return frame.data }
        return WireFrames.unmask(frame.data, key: key)
    }

    fileprivate func clientReadComplete() {
        if mode == .live { upstream?.flush() }
    }

    fileprivate func clientWritabilityChanged() {
        // The client can take more: resume reading from the worker.
        if client.isWritable, let upstream { upstream.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
    }

    // ---- going live ----------------------------------------------------------------------------

    /// Switches to forwarding: the rewritten handshake first, then whatever the client sent meanwhile.
    func goLive(upstream: any Channel, handshake: [UInt8], connection: ClientConnection, hub: WorkerHub) {
        eventLoop.execute {
            guard self.mode == .capturing else {
                upstream.close(promise: nil)
                return
            }
            self.upstream = upstream
            self.rawWriter = try? upstream.pipeline.syncOperations.context(handlerType: RawWriteHandler.self)
            self.connection = connection
            self.hub = hub
            self.mode = .live
            upstream.write(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: handshake)), promise: nil)
            while let f = self.queued.popFirst() { self.forwardToWorker(f) }
            self.queuedBytes = 0
            upstream.flush()
            if let close = self.clientClose {
                upstream.writeAndFlush(Self.closeFrame(ProxySession.sendable(close.code), reason: close.reason, masked: true), promise: nil)
            }
            if self.readingPaused, upstream.isWritable {
                self.readingPaused = false
                self.client.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            }
        }
    }

    // ---- worker side ---------------------------------------------------------------------------

    fileprivate func workerFrame(_ frame: WebSocketFrame) {
        switch frame.opcode {
        case .text, .binary, .continuation:
            if !fromWorkerMidMessage, frame.opcode == .text, let connection {
                ProxySession.track(frame.data, fin: frame.fin, conn: connection, metrics: metrics)
            }
            fromWorkerMidMessage = !frame.fin
            metrics.framesToClient.increment()
            metrics.bytesToClient.increment(by: Int64(frame.data.readableBytes))
            toClientMidMessage = !frame.fin
            client.write(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.data), promise: nil)
            if frame.fin, !injectQueue.isEmpty {
                for q in injectQueue { client.write(WebSocketFrame(fin: true, opcode: .text, data: q), promise: nil) }
                injectQueue.removeAll()
            }
            if !client.isWritable { upstream?.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
        case .ping:
            upstream?.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.data), promise: nil)
        case .pong:
            awaitingPong = false
        case .connectionClose:
            var data = frame.data
            let code = data.readInteger(as: UInt16.self).map { WebSocketErrorCode(codeNumber: Int($0)) } ?? .normalClosure
            let reason = data.readableBytes > 0 ? data.readString(length: data.readableBytes) : nil
            // Answer the worker's close (it then closes the socket) and report it.
            upstream?.writeAndFlush(Self.closeFrame(.normalClosure, reason: nil, masked: true), promise: nil)
            finish(.closed(code: code, reason: reason))
        default:
            break
        }
    }

    fileprivate func workerReadComplete() { client.flush() }

    fileprivate func workerWritabilityChanged() {
        if let upstream, upstream.isWritable, readingPaused, mode == .live {
            readingPaused = false
            client.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
    }

    fileprivate func workerInactive() { finish(.lost("the connection to the worker dropped")) }

    fileprivate func workerError(_ error: any Error) { finish(.lost("\(error)")) }

    private func finish(_ end: UpstreamEnd) {
        if mode != .closed { mode = .closed }
        guard !upstreamEndDone else { return }
        upstreamEndDone = true
        flags.bitwiseOr(1, ordering: .releasing)
        upstreamEnd.succeed(end)
    }

    /// Ends the session's relay whatever state it is in: pending promises are completed (NIO insists),
    /// the worker socket is closed. Called once the session is over.
    func finalize() {
        flags.bitwiseOr(2, ordering: .releasing)
        eventLoop.execute {
            if !self.handshakeDone {
                self.handshakeDone = true
                self.handshakePromise.succeed(.closed)
            }
            self.finish(.lost("session ended"))
            self.upstream?.close(promise: nil)
            self.rawWriter = nil
            self.queued.removeAll()
        }
    }

    /// Keep-alive toward the worker: a ping every `interval`; no pong by the next one means the worker
    /// is gone.
    func startPinging(every interval: TimeAmount) {
        guard interval > .zero else { return }
        eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            guard self.mode == .live, let upstream = self.upstream else {
                if self.mode == .closed { task.cancel() }
                return
            }
            if self.awaitingPong {
                task.cancel()
                self.finish(.lost("the worker stopped answering pings"))
                upstream.close(promise: nil)
                return
            }
            self.awaitingPong = true
            upstream.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: ByteBuffer(string: "lab")), promise: nil)
        }
    }

    // ---- controller events --------------------------------------------------------------------

    /// Writes a controller event to the client between whole messages.
    func inject(_ bytes: [UInt8]) -> EventLoopFuture<Void> {
        eventLoop.submit {
            let buffer = ByteBuffer(bytes: bytes)
            if self.toClientMidMessage {
                self.injectQueue.append(buffer)
            } else {
                self.client.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: buffer), promise: nil)
            }
        }
    }

    /// Closes the worker socket (after the client left), politely if it is still open.
    func closeUpstream() {
        eventLoop.execute {
            self.mode = .closed
            self.upstream?.close(promise: nil)
        }
    }

    static func closeFrame(_ code: WebSocketErrorCode, reason: String?, masked: Bool) -> WebSocketFrame {
        var buffer = ByteBuffer()
        buffer.write(webSocketErrorCode: code)
        if let reason { buffer.writeString(String(reason.utf8.prefix(120)) ?? "") }
        return WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: masked ? .random() : nil, data: buffer)
    }
}

/// On the user's channel, right after the frame decoder: data frames go to the relay (never to the
/// framework), control frames continue to the framework (which answers pings and runs the close handshake).
final class ClientSideHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    let relay: FrameRelay

    init(relay: FrameRelay) { self.relay = relay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            relay.clientData(frame)  // still masked: forwarded as is, unmasked only where it must be read
        case .connectionClose:
            var payload = frame.unmaskedData
            let code = payload.readInteger(as: UInt16.self).map { WebSocketErrorCode(codeNumber: Int($0)) }
            let reason = payload.readableBytes > 0 ? payload.readString(length: payload.readableBytes) : nil
            relay.clientClosed(code: code, reason: reason)
            context.fireChannelRead(data)
        default:
            context.fireChannelRead(data)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        relay.clientReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        relay.clientWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        relay.clientClosed(code: nil, reason: nil)
        context.fireChannelInactive()
    }
}

/// On the worker's channel (after the WebSocket upgrade).
final class UpstreamSideHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    let relay: FrameRelay

    init(relay: FrameRelay) { self.relay = relay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        relay.workerFrame(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) { relay.workerReadComplete() }

    func channelWritabilityChanged(context: ChannelHandlerContext) { relay.workerWritabilityChanged() }

    func channelInactive(context: ChannelHandlerContext) { relay.workerInactive() }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        relay.workerError(error)
        context.close(promise: nil)
    }
}
