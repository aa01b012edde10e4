import NIOCore
import RelayProtocol

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
            let hay = raw.bindMemory(to: UInt8.self)
            let pat = UnsafeBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount)
            guard pat.count > 0, hay.count >= pat.count else { return false }
            let first = pat[0]
            var i = 0
            let last = hay.count - pat.count
            while i <= last {
                if hay[i] == first {
                    var j = 1
                    while j < pat.count, hay[i + j] == pat[j] { j += 1 }
                    if j == pat.count { return true }
                }
                i += 1
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
