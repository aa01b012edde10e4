/// A minimal in-memory ustar writer, for build contexts (`Dockerfile` + a few files) and small image
/// imports without shelling out to `tar`.
public struct TarArchive: Sendable {
    private var data: [UInt8] = []

    public init() {}

    /// Adds a regular file. `path` is relative (e.g. `Dockerfile`, `app/run.sh`) and at most 100 bytes.
    public mutating func addFile(_ path: String, contents: [UInt8], mode: Int = 0o644) {
        appendHeader(path: path, size: contents.count, mode: mode, type: UInt8(ascii: "0"))
        data += contents
        data += [UInt8](repeating: 0, count: (512 - contents.count % 512) % 512)
    }

    /// Adds a regular file with UTF-8 text.
    public mutating func addFile(_ path: String, text: String, mode: Int = 0o644) {
        addFile(path, contents: Array(text.utf8), mode: mode)
    }

    /// Adds a directory entry.
    public mutating func addDirectory(_ path: String, mode: Int = 0o755) {
        appendHeader(path: path.hasSuffix("/") ? path : path + "/", size: 0, mode: mode, type: UInt8(ascii: "5"))
    }

    /// The archive with its two terminating zero blocks.
    public var bytes: [UInt8] { data + [UInt8](repeating: 0, count: 1024) }

    private mutating func appendHeader(path: String, size: Int, mode: Int, type: UInt8) {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int, width: Int) {
            for (i, byte) in bytes.prefix(width).enumerated() { header[offset + i] = byte }
        }
        func octal(_ value: Int, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(Array(path.utf8), at: 0, width: 100)
        put(octal(mode, width: 8), at: 100, width: 8)
        put(octal(0, width: 8), at: 108, width: 8)  // uid
        put(octal(0, width: 8), at: 116, width: 8)  // gid
        put(octal(size, width: 12), at: 124, width: 12)
        put(octal(0, width: 12), at: 136, width: 12)  // mtime: fixed, so contexts hash the same
        put([UInt8](repeating: 0x20, count: 8), at: 148, width: 8)  // checksum placeholder
        header[156] = type
        put(Array("ustar\u{0}00".utf8), at: 257, width: 8)
        put(Array("root".utf8), at: 265, width: 32)
        put(Array("root".utf8), at: 297, width: 32)
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(octal(checksum, width: 7) + [0x20], at: 148, width: 8)
        data += header
    }
}
