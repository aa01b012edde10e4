import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// Reassembles WebSocket frames into messages with a size cap, so an oversize message is reported
/// (an `error` event, then close 1009) rather than crashing or buffering without bound.
///
/// A class so the handshake read and the later client loop (another task) share one iterator; the
/// two never run at the same time, which is why the unchecked Sendable is sound.
final class MessageReader: @unchecked Sendable {
    enum Message {
        case text(String)
        case binary
    }

    struct Failure: Error {
        let message: String
        let code: WebSocketErrorCode
    }

    private var frames: WebSocketInboundStream.AsyncIterator
    let limit: Int

    init(frames: WebSocketInboundStream.AsyncIterator, limit: Int) {
        self.frames = frames
        self.limit = limit
    }

    /// Next message; nil at end of stream.
    func next() async -> Result<Message, Failure>? {
        var buffer = ByteBuffer()
        var opcode: WebSocketDataFrame.Opcode?
        do {
            while let frame = try await frames.next() {
                if opcode == nil { opcode = frame.opcode }
                var data = frame.data
                if buffer.readableBytes + data.readableBytes > limit {
                    return .failure(Failure(message: "Message too large: the limit is \(limit) bytes", code: .messageTooLarge))
                }
                buffer.writeBuffer(&data)
                guard frame.fin else { continue }
                if opcode == .binary { return .success(.binary) }
                return .success(.text(String(buffer: buffer)))
            }
        } catch {
            return nil
        }
        return nil
    }
}
