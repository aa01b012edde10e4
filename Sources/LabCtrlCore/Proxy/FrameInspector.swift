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

    /// Largest frame ``object(_:)`` parses: the proxy reads frames on the event loop, so anything bigger
    /// (an `input_ack` echoing a pasted text, a permission prompt for a big file) is only scanned.
    static let parseLimit = 64 * 1024

    /// Parses a whole frame as a JSON object (nil if it is not one, or larger than ``parseLimit``).
    static func object(_ buffer: ByteBuffer) -> JSONObject? {
        guard buffer.readableBytes <= parseLimit else { return nil }
        return buffer.withUnsafeReadableBytes { raw in
            (try? JSON.parse(raw.bindMemory(to: UInt8.self)))?.objectValue
        }
    }

    /// The scalar value of the first `"request_id"` key, found by a scan instead of a parse (for frames
    /// over ``parseLimit``). The byte sequence `"request_id"` followed by `:` can only be a key (inside a
    /// JSON string its quotes would be escaped); workers write the top-level one before the tool input.
    static func scanRequestID(_ buffer: ByteBuffer) -> JSON? {
        buffer.withUnsafeReadableBytes { raw -> JSON? in
            let bytes = raw.bindMemory(to: UInt8.self)
            let key = Array(#""request_id""#.utf8)
            guard bytes.count > key.count else { return nil }
            var offset = 0
            while offset + key.count <= bytes.count {
                guard let hit = Self.find(key, in: raw, from: offset) else { return nil }
                var i = hit + key.count
                offset = i
                func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
                while i < bytes.count, isSpace(bytes[i]) { i += 1 }
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { continue }
                i += 1
                while i < bytes.count, isSpace(bytes[i]) { i += 1 }
                let start = i
                let limit = min(bytes.count, start + 1024)  // ids are short: never scan far
                if i < limit, bytes[i] == UInt8(ascii: "\"") {
                    i += 1
                    while i < limit, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                    guard i < limit else { return nil }
                    i += 1
                } else {
                    while i < limit, Self.isNumberByte(bytes[i]) { i += 1 }
                }
                guard i > start else { return nil }
                return try? JSON.parse(UnsafeBufferPointer(rebasing: bytes[start..<i]))
            }
            return nil
        }
    }

    /// Offset of the first `needle` in `raw` at or after `from` (memchr for the first byte, memcmp for the rest).
    private static func find(_ needle: [UInt8], in raw: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard let base = raw.baseAddress, let first = needle.first else { return nil }
        var offset = from
        let lastStart = raw.count - needle.count
        while offset <= lastStart {
            guard let hit = memchr(base + offset, Int32(first), lastStart - offset + 1) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(hit))
            if needle.withUnsafeBytes({ memcmp(base + at, $0.baseAddress!, needle.count) }) == 0 { return at }
            offset = at + 1
        }
        return nil
    }

    private static func isNumberByte(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
            || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
    }

    /// A permission `request_id` as a stable string key (the worker accepts strings and integers).
    static func requestKey(_ value: JSON?) -> String? {
        guard let value else { return nil }
        switch value {
        case .string(let s): return "s:" + s
        case .int(let i): return "i:\(i)"
        case .double(let d): return Int64(exactly: d).map { "i:\($0)" } ?? "d:\(d)"
        default: return nil
        }
    }
}
