/// `KEY=VALUE` lines (the `LAB_WORKER_ENV_FILE` format, as Docker's `--env-file` and Compose read it):
/// blank lines and `#` comments are skipped, an optional `export ` prefix is allowed, and a value wrapped
/// in matching single or double quotes loses them. No variable expansion: values are taken literally.
public enum EnvFile {
    /// Parses `text`; throws ``ConfigError`` naming `variable` and the line number on a malformed line.
    public static func parse(_ text: String, variable: String = "LAB_WORKER_ENV_FILE") throws(ConfigError) -> [(String, String)] {
        var out: [(String, String)] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = String(raw)
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            var body = Substring(trimmed)
            if body.hasPrefix("export ") { body = body.dropFirst(7) }
            guard let eq = body.firstIndex(of: "=") else {
                throw ConfigError(variable: variable, value: nil, expected: "KEY=VALUE on line \(number)")
            }
            let key = String(body[..<eq]).trimmingWhitespace()
            guard LabConfig.isEnvName(key) else {
                throw ConfigError(variable: variable, value: nil, expected: "a variable name before '=' on line \(number)")
            }
            var value = String(body[body.index(after: eq)...])
            if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f {
                value = String(value.dropFirst().dropLast())
            }
            out.append((key, value))
        }
        return out
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String, variable: String = "LAB_WORKER_ENV_FILE") throws(ConfigError) -> [(String, String)] {
        guard let text = readTextFile(path) else {
            throw ConfigError(variable: variable, value: path, expected: "a readable file")
        }
        return try parse(text, variable: variable)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads a whole (small) file as UTF-8; `nil` if it cannot be read. Plain POSIX so config loading works
/// before anything else is set up.
func readTextFile(_ path: String, limit: Int = 16 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if bytes.count > limit { return nil }
    }
    return String(decoding: bytes, as: UTF8.self)
}
