import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The operator token file (`LAB_TOKENS_FILE`): lines `<user_id> <token>`, `#` comments.
///
/// The file is re-read when its modification time changes, so operators can add or revoke users
/// without a restart. A file that becomes unreadable or malformed keeps the last good contents (and the
/// error is reported by `reloadIfChanged`).
public final class TokensFile: Sendable {
    public let path: String
    private struct State {
        var entries: [(user: UserID, token: [UInt8])] = []
        var mtime: (Int, Int) = (0, 0)
    }
    private let state = Mutex(State())

    /// Loads `path`; throws ``ConfigError`` naming `LAB_TOKENS_FILE` if it cannot be used.
    public init(path: String) throws(ConfigError) {
        self.path = path
        let entries = try Self.load(path)
        let mtime = Self.mtime(path) ?? (0, 0)
        state.withLock {
            $0.entries = entries
            $0.mtime = mtime
        }
    }

    /// Parses the file format. Tokens must be at least 16 characters and unique.
    public static func parse(_ text: String) throws(ConfigError) -> [(user: UserID, token: [UInt8])] {
        var out: [(user: UserID, token: [UInt8])] = []
        var seen = Set<String>()
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = String(raw).trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count == 2 else {
                throw ConfigError(variable: "LAB_TOKENS_FILE", value: nil, expected: "'<user_id> <token>' on line \(number)")
            }
            guard let user = UserID(String(parts[0])) else {
                throw ConfigError(variable: "LAB_TOKENS_FILE", value: nil, expected: "a user id (\(UserID.rule)) on line \(number)")
            }
            let token = String(parts[1])
            guard token.utf8.count >= 16 else {
                throw ConfigError(variable: "LAB_TOKENS_FILE", value: nil, expected: "a token of at least 16 characters on line \(number)")
            }
            guard seen.insert(token).inserted else {
                throw ConfigError(variable: "LAB_TOKENS_FILE", value: nil, expected: "unique tokens (line \(number) repeats one)")
            }
            out.append((user, Array(token.utf8)))
        }
        return out
    }

    /// The user owning `token`, comparing against every entry in constant time per entry.
    public func user(for token: String) -> UserID? {
        reloadIfChanged()
        let candidate = Array(token.utf8)
        return state.withLock { s in
            var found: UserID?
            for entry in s.entries where constantTimeEqual(entry.token, candidate) {
                found = entry.user
            }
            return found
        }
    }

    /// Re-reads the file when its mtime changed. Returns the error if the new contents are unusable.
    @discardableResult
    public func reloadIfChanged() -> ConfigError? {
        guard let m = Self.mtime(path) else { return nil }
        let changed = state.withLock { $0.mtime != m }
        guard changed else { return nil }
        do {
            let entries = try Self.load(path)
            state.withLock {
                $0.entries = entries
                $0.mtime = m
            }
            return nil
        } catch {
            state.withLock { $0.mtime = m }  // do not retry a bad file on every request
            return error
        }
    }

    private static func load(_ path: String) throws(ConfigError) -> [(user: UserID, token: [UInt8])] {
        guard let text = readTextFile(path) else {
            throw ConfigError(variable: "LAB_TOKENS_FILE", value: path, expected: "a readable file")
        }
        return try parse(text)
    }

    private static func mtime(_ path: String) -> (Int, Int)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec) ^ Int(st.st_size) << 32)
    }
}

/// Compares two byte strings without an early exit on the first difference.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    let n = max(a.count, b.count)
    for i in 0..<n {
        let x = i < a.count ? a[i] : 0
        let y = i < b.count ? b[i] : 0
        diff |= x ^ y
    }
    return diff == 0
}
