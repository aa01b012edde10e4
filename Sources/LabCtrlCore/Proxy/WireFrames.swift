import NIOCore
import NIOWebSocket

/// Byte-level helpers that keep the relay from copying payloads it only passes on.
///
/// A client frame arrives masked with a key the browser chose at random for that frame. Unmasking it and
/// masking it again toward the worker would cost two passes over every byte; instead the proxy forwards
/// the masked payload *as received, with the same key* (still a fresh, unpredictable key per frame, as
/// RFC 6455 §5.3 requires of a client), and only writes a new header. Payloads are unmasked only when the
/// controller must read them (the handshake, small frames it classifies), with a word-at-a-time XOR.
enum WireFrames {
    /// The header of a masked (client → server) frame of `length` bytes.
    static func maskedHeader(fin: Bool, opcode: WebSocketOpcode, length: Int, key: WebSocketMaskingKey) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(14)
        b.writeInteger(UInt8(fin ? 0x80 : 0) | UInt8(webSocketOpcode: opcode))
        if length < 126 {
            b.writeInteger(UInt8(0x80) | UInt8(length))
        } else if length <= Int(UInt16.max) {
            b.writeInteger(UInt8(0x80 | 126))
            b.writeInteger(UInt16(length))
        } else {
            b.writeInteger(UInt8(0x80 | 127))
            b.writeInteger(UInt64(length))
        }
        for byte in key { b.writeInteger(byte) }
        return b
    }

    /// A frame's payload in clear.
    static func plain(_ frame: WebSocketFrame) -> ByteBuffer {
        guard let key = frame.maskKey else { return frame.data }
        return unmask(frame.data, key: key)
    }

    /// `data` XOR the repeating 4-byte `key`, into a new buffer.
    static func unmask(_ data: ByteBuffer, key: WebSocketMaskingKey) -> ByteBuffer {
        let n = data.readableBytes
        var out = ByteBuffer()
        out.reserveCapacity(n)
        let k = Array(key)
        let k32 = UInt32(k[0]) | UInt32(k[1]) << 8 | UInt32(k[2]) << 16 | UInt32(k[3]) << 24
        let k64 = UInt64(k32) | UInt64(k32) << 32
        _ = data.withUnsafeReadableBytes { src in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { dst in
                var i = 0
                while i + 8 <= n {
                    let word = src.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ k64
                    dst.storeBytes(of: word, toByteOffset: i, as: UInt64.self)
                    i += 8
                }
                while i < n {
                    dst[i] = src[i] ^ k[i & 3]
                    i += 1
                }
                return n
            }
        }
        return out
    }
}

/// Sits at the head of the worker channel's pipeline so the relay can write ready-made frame bytes
/// (header + still-masked payload) below the WebSocket encoder.
final class RawWriteHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
}
