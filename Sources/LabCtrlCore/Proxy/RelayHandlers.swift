import NIOCore
import NIOWebSocket

/// On the user's channel, right after the frame decoder (installed with the upgrade): data frames go to
/// the relay (never to the framework), control frames continue to the framework (which answers pings and
/// runs the close handshake).
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

    /// The server allows half-closure, so a client that vanished with a FIN (no close frame) shows up only
    /// as `inputClosed`: end the relay and the socket now, not at the next missed ping, so its
    /// connection slot is free at once.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent {
            relay.clientClosed(code: nil, reason: nil)
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// On the worker's channel (after the WebSocket upgrade, ``UpstreamConnector``).
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
