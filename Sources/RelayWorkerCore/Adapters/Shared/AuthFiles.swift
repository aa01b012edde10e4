import Foundation
import RelayProtocol

/// Credential and settings files of the agent CLIs, as the auth helpers read and write them.
enum AuthFiles {
    /// `1`, `true`, `yes`, `on` (any case, surrounding whitespace ignored).
    static func truthy(_ value: String?) -> Bool {
        guard let value else { return false }
        return ["1", "true", "yes", "on"].contains(value.trimmed.lowercased())
    }

    /// The child's home: its `HOME`, else the worker's.
    static func home(_ environment: [String: String], fallback: [String: String]) -> String {
        environment["HOME"] ?? fallback["HOME"] ?? NSHomeDirectory()
    }

    /// The file's JSON object, or nil when it is missing, unreadable or not an object.
    static func readObject(_ path: String) -> JSONObject? {
        guard let data = FileManager.default.contents(atPath: path),
            case .object(let o)? = try? JSON.parse(Array(data))
        else { return nil }
        return o
    }

    /// Writes `object` as 2-space-indented JSON through `<path>.tmp` and a rename. Unlike the
    /// reference the temp file is created 0600, so the secret is never world-readable.
    static func writeObject(_ object: JSONObject, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tmp = path + ".tmp"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw RPCError("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let bytes = Array(pretty(.object(object)).utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw RPCError("cannot write \(path)")
        }
    }

    /// JSON with 2-space indentation (what `json.dump(indent=2)` writes; the CLIs accept any JSON).
    static func pretty(_ value: JSON, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .object(let o) where !o.isEmpty:
            let items = o.map { inner + JSON.string($0.0).encodedString() + ": " + pretty($0.1, indent: inner) }
            return "{\n" + items.joined(separator: ",\n") + "\n" + indent + "}"
        case .array(let a) where !a.isEmpty:
            return "[\n" + a.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        default:
            return value.encodedString()
        }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
