import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// Reassembles WebSocket frames into messages with a size cap, so an oversize message is reported
/// (an `error` event, then close 1009) rather than crashing or buffering without bound; a text
/// message that is not valid UTF-8 gets an `error` event and close 1007.
///
/// Unchecked Sendable: one iterator read first by the session (handshake), then only by the client
/// loop's child task; the two never overlap (a task group's child task cannot take a non-Sendable
/// value the group body captured, so the hand-over cannot be checked).
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

    /// Next message; nil at end of stream. `cap` lowers the size limit for this one message (the handshake).
    func next(cap: Int? = nil) async -> Result<Message, Failure>? {
        let limit = min(cap ?? self.limit, self.limit)
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
                // RFC 6455 §8.1: a text message that is not UTF-8 fails the connection (1007), never repaired.
                guard let text = buffer.withUnsafeReadableBytes({ String(validating: $0.bindMemory(to: UInt8.self), as: UTF8.self) })
                else {
                    return .failure(Failure(message: "Invalid UTF-8 in a text frame", code: .dataInconsistentWithMessage))
                }
                return .success(.text(text))
            }
        } catch {
            return nil
        }
        return nil
    }
}
