import NIOCore
import NIOWebSocket
import Synchronization

/// Remembers the close code and reason a client sent, so the proxy can pass them on to the worker.
///
/// The WebSocket library answers a client's close itself and only tells the handler that the inbound
/// stream ended; this pass-through handler, inserted right after the frame decoder, keeps a copy of
/// the close frame's payload.
final class CloseFrameSniffer: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    private let seen = Mutex<(code: UInt16, reason: String?)?>(nil)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.opcode == .connectionClose {
            var payload = frame.unmaskedData
            if let code = payload.readInteger(as: UInt16.self) {
                let reason = payload.readableBytes > 0 ? payload.readString(length: payload.readableBytes) : nil
                seen.withLock { $0 = (code, reason) }
            }
        }
        context.fireChannelRead(data)
    }

    /// The client's close code and reason, if it sent a close frame with a code.
    var close: (code: WebSocketErrorCode, reason: String?)? {
        seen.withLock { s in s.map { (WebSocketErrorCode(codeNumber: Int($0.code)), $0.reason) } }
    }

    /// Inserts a sniffer after the WebSocket frame decoder of an upgraded channel. Returns nil (and the
    /// proxy falls back to a normal close) if the pipeline does not look as expected.
    static func install(on channel: any Channel) async -> CloseFrameSniffer? {
        let sniffer = CloseFrameSniffer()
        do {
            try await channel.eventLoop.submit {
                let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                try channel.pipeline.syncOperations.addHandler(sniffer, position: .after(decoder))
            }.get()
            return sniffer
        } catch {
            return nil
        }
    }
}
