import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization
import WebSocketServerChannel

/// Connections that have not sent a complete request head yet (no credential seen), capped by
/// `LAB_MAX_PENDING_CONNECTIONS`: past it a new connection is closed at once, so a flood of silent
/// sockets cannot take every descriptor from the sessions already running.
final class PendingHeads: Sendable {
    let limit: Int
    private let count = Atomic<Int>(0)
    let onRefused: @Sendable () -> Void

    init(limit: Int, onRefused: @escaping @Sendable () -> Void = {}) {
        self.limit = limit
        self.onRefused = onRefused
    }

    func enter() -> Bool {
        let now = count.add(1, ordering: .relaxed).newValue
        guard limit == 0 || now <= limit else {
            count.subtract(1, ordering: .relaxed)
            onRefused()
            return false
        }
        return true
    }

    func leave() { count.subtract(1, ordering: .relaxed) }

    var current: Int { count.load(ordering: .relaxed) }
}

/// Slowloris bound: a new connection that has not sent a complete HTTP request head (the blank line)
/// within `LAB_HTTP_IDLE_TIMEOUT_SECS` is closed.
///
/// Hummingbird's own idle timeout only starts once a first request was parsed (its handler is added
/// after the upgrade decision), so this handler sits first in the pipeline, watches the raw bytes for
/// the end of the head, and removes itself once it has seen it.
final class RequestHeadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let timeout: TimeAmount
    let pending: PendingHeads
    /// Counted in `pending` until the head is complete or the connection goes.
    private var counted = false
    private var timer: Scheduled<Void>?
    /// Line feeds in a row, ignoring carriage returns: two end the head.
    private var newlines = 0
    private var done = false

    init(timeout: TimeAmount, pending: PendingHeads) {
        self.timeout = timeout
        self.pending = pending
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard pending.enter() else {
            context.close(promise: nil)
            return
        }
        counted = true
        let ctx = context
        let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
        timer = loop.scheduleTask(in: timeout) {
            ctx.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        leavePending()
    }

    func channelInactive(context: ChannelHandlerContext) {
        leavePending()
        context.fireChannelInactive()
    }

    private func leavePending() {
        guard counted else { return }
        counted = false
        pending.leave()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done {
            let buffer = unwrapInboundIn(data)
            let end = buffer.withUnsafeReadableBytes { raw -> Bool in
                for b in raw {
                    if b == 0x0A {
                        newlines += 1
                        if newlines == 2 { return true }
                    } else if b != 0x0D {
                        newlines = 0
                    }
                }
                return false
            }
            if end {
                done = true
                timer?.cancel()
                timer = nil
                leavePending()
                context.fireChannelRead(data)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
    }
}

/// Hummingbird's HTTP/1 + WebSocket child channel with ``RequestHeadDeadlineHandler`` in front.
struct HeadDeadlineChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let timeout: TimeAmount
    let pending: PendingHeads

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                RequestHeadDeadlineHandler(timeout: timeout, pending: pending), position: .first)
        }.flatMap { base.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async { await base.handle(value: value, logger: logger) }
}

extension HTTPServerBuilder {
    /// ``WebSocketServerChannel`` with a deadline on the first request head.
    static func webSocketServer(
        configuration: HTTP1WebSocketUpgradeChannel.Configuration, headTimeout: TimeAmount, pending: PendingHeads,
        decide: @escaping WebSocketServerChannel.Decide
    ) -> HTTPServerBuilder {
        .init { responder in
            HeadDeadlineChannel(
                base: WebSocketServerChannel(responder: responder, configuration: configuration, decide: decide),
                timeout: headTimeout, pending: pending)
        }
    }
}
