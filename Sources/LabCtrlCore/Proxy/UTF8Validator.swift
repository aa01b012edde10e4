import NIOCore
import NIOWebSocket

/// Streaming UTF-8 check of client text messages (RFC 6455 §8.1: invalid text fails the connection with
/// 1007). Fed frame by frame, still masked (the key is applied on the fly, so nothing is copied); a
/// character may span frames. Rejects what RFC 3629 rejects: overlong forms, surrogates (U+D800–DFFF),
/// values above U+10FFFF, stray continuation bytes, truncation at the end of the message.
struct UTF8Validator {
    /// Continuation bytes still expected, and the range the next one must be in.
    private var need = 0
    private var lo: UInt8 = 0x80
    private var hi: UInt8 = 0xBF

    /// No character is open (a message may end here).
    var isComplete: Bool { need == 0 }

    mutating func reset() {
        need = 0
        lo = 0x80
        hi = 0xBF
    }

    /// Feeds one frame's payload; false at the first invalid byte.
    mutating func feed(_ data: ByteBuffer, key: WebSocketMaskingKey?) -> Bool {
        let k: (UInt8, UInt8, UInt8, UInt8) = key.map { k in (k[k.startIndex], k[k.startIndex + 1], k[k.startIndex + 2], k[k.startIndex + 3]) } ?? (0, 0, 0, 0)
        let k32 = UInt32(k.0) | UInt32(k.1) << 8 | UInt32(k.2) << 16 | UInt32(k.3) << 24
        let k64 = UInt64(k32) | UInt64(k32) << 32
        return data.withUnsafeReadableBytes { raw -> Bool in
            let n = raw.count
            var i = 0
            while i < n {
                // ASCII run, 8 bytes at a time (the common case for JSON).
                if need == 0, i & 3 == 0 {
                    while i + 8 <= n, (raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ k64) & 0x8080_8080_8080_8080 == 0 { i += 8 }
                    if i >= n { break }
                }
                let m: UInt8
                switch i & 3 {
                case 0: m = k.0
                case 1: m = k.1
                case 2: m = k.2
                default: m = k.3
                }
                guard step(raw[i] ^ m) else { return false }
                i += 1
            }
            return true
        }
    }

    /// One byte of the RFC 3629 automaton.
    private mutating func step(_ b: UInt8) -> Bool {
        if need > 0 {
            guard b >= lo, b <= hi else { return false }
            need -= 1
            lo = 0x80
            hi = 0xBF
            return true
        }
        switch b {
        case 0x00...0x7F: return true
        case 0xC2...0xDF: need = 1
        case 0xE0: (need, lo) = (2, 0xA0)
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: (need, hi) = (2, 0x9F)
        case 0xF0: (need, lo) = (3, 0x90)
        case 0xF1...0xF3: need = 3
        case 0xF4: (need, hi) = (3, 0x8F)
        default: return false
        }
        return true
    }
}
