import NIOCore
import RelayProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Cheap looks into relay frames for activity tracking, without decoding every frame.
///
/// Worker events start with their `type` (`{"type": "…"` in the reference, `{"type":"…"` in ours), so a
/// scan of the first bytes finds it; only the rare frames whose details matter (permission requests and
/// answers) are parsed in full.
enum FrameInspector {
    /// The value of a leading `"type"` key, if the frame starts with one.
    static func leadingType(_ buffer: ByteBuffer) -> String? {
        buffer.withUnsafeReadableBytes { raw -> String? in
            let bytes = raw.bindMemory(to: UInt8.self)
            let n = min(bytes.count, 96)
            var i = 0
            func skipSpace() { while i < n, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 } }
            skipSpace()
            guard i < n, bytes[i] == UInt8(ascii: "{") else { return nil }
            i += 1
            skipSpace()
            let key: [UInt8] = Array(#""type""#.utf8)
            guard i + key.count <= n else { return nil }
            for k in 0..<key.count where bytes[i + k] != key[k] { return nil }
            i += key.count
            skipSpace()
            guard i < n, bytes[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            guard i < n, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            let start = i
            while i < n, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") { i += 1 }
            guard i < n, bytes[i] == UInt8(ascii: "\"") else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }
    }

    /// Whether the buffer contains `needle` (used to decide if a client frame is worth parsing).
    static func contains(_ buffer: ByteBuffer, _ needle: StaticString) -> Bool {
        buffer.withUnsafeReadableBytes { raw in
            let m = needle.utf8CodeUnitCount
            guard m > 0, raw.count >= m, let base = raw.baseAddress else { return false }
            let first = Int32(needle.utf8Start[0])
            var offset = 0
            let lastStart = raw.count - m
            // memchr for the first byte, memcmp for the rest: both vectorised in libc.
            while offset <= lastStart {
                guard let hit = memchr(base + offset, first, lastStart - offset + 1) else { return false }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, needle.utf8Start, m) == 0 { return true }
                offset = at + 1
            }
            return false
        }
    }

    /// Parses a whole frame as a JSON object (nil if it is not one).
    static func object(_ buffer: ByteBuffer) -> JSONObject? {
        buffer.withUnsafeReadableBytes { raw in
            (try? JSON.parse(raw.bindMemory(to: UInt8.self)))?.objectValue
        }
    }

    /// A permission `request_id` as a stable string key (the worker accepts strings and integers).
    static func requestKey(_ value: JSON?) -> String? {
        guard let value else { return nil }
        switch value {
        case .string(let s): return "s:" + s
        case .int(let i): return "i:\(i)"
        case .double(let d): return d.rounded() == d ? "i:\(Int64(d))" : "d:\(d)"
        default: return nil
        }
    }
}
