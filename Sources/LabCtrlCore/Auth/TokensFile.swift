import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The operator token file (`LAB_TOKENS_FILE`): lines `<user_id> <token>`, `#` comments.
///
/// The file is re-read when it changes (modification or status-change time, size, inode), so operators
/// can add or revoke users without a restart: on every authentication and every `LAB_TOKENS_RELOAD_SECS`
/// (``RevocationService``). A file that goes missing or unreadable fails closed (no token is accepted
/// until it is back); a malformed one keeps the last good contents. Either is a reload error, reported
/// once per change of the file through `report` (logged and counted by the controller).
public final class TokensFile: Sendable {
    public let path: String
    /// Why a reload failed (the metric label) and the error.
    public struct ReloadError: Sendable {
        public enum Kind: String, Sendable { case missing, unreadable, malformed }
        public var kind: Kind
        public var error: ConfigError
    }
    private struct State {
        var entries: [(user: UserID, token: [UInt8])] = []
        /// What the file looked like when last read; nil = missing.
        var version: FileVersion?
    }
    private let state = Mutex(State())
    private let report: @Sendable (ReloadError) -> Void

    /// Loads `path`; throws ``ConfigError`` naming `LAB_TOKENS_FILE` if it cannot be used.
    public init(path: String, report: @escaping @Sendable (ReloadError) -> Void = { _ in }) throws(ConfigError) {
        self.path = path
        self.report = report
        let version = Self.version(path)
        let entries = try Self.load(path)
        state.withLock {
            $0.entries = entries
            $0.version = version
        }
    }

    /// The number of tokens currently accepted.
    public var count: Int { state.withLock { $0.entries.count } }

    /// Parses the file format. Tokens must be at least 16 characters and unique.
    public static func parse(_ text: String) throws(ConfigError) -> [(user: UserID, token: [UInt8])] {
        var out: [(user: UserID, token: [UInt8])] = []
        var seen = Set<String>()
        var number = 0
        // Split on code points, not Characters: "\r\n" is one Character, and a blank followed by a
        // combining mark would otherwise stay inside a token.
        for raw in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = String(String.UnicodeScalarView(raw)).trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.unicodeScalars.split(whereSeparator: { $0 == " " || $0 == "\t" }).map {
                String(String.UnicodeScalarView($0))
            }
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
            // Tokens travel in headers, cookies and query strings: visible ASCII only.
            guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ConfigError(
                    variable: "LAB_TOKENS_FILE", value: nil, expected: "a token of visible ASCII characters on line \(number)")
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

    /// Re-reads the file when it changed. Returns (and reports) the error if it is now unusable.
    @discardableResult
    public func reloadIfChanged() -> ReloadError? {
        let v = Self.version(path)
        // Only the caller that records the new version reloads (no double reports under concurrency).
        let changed = state.withLock { s in
            guard s.version != v else { return false }
            s.version = v
            return true
        }
        guard changed else { return nil }
        let failure: ReloadError
        if v == nil {
            failure = ReloadError(kind: .missing, error: ConfigError(variable: "LAB_TOKENS_FILE", value: path, expected: "an existing file"))
            state.withLock { $0.entries = [] }
        } else if let text = readTextFile(path) {
            do {
                let entries = try Self.parse(text)
                state.withLock { $0.entries = entries }
                return nil
            } catch {
                failure = ReloadError(kind: .malformed, error: error)  // last good contents stay
            }
        } else {
            failure = ReloadError(kind: .unreadable, error: ConfigError(variable: "LAB_TOKENS_FILE", value: path, expected: "a readable file"))
            state.withLock { $0.entries = [] }
        }
        report(failure)
        return failure
    }

    private static func load(_ path: String) throws(ConfigError) -> [(user: UserID, token: [UInt8])] {
        guard let text = readTextFile(path) else {
            throw ConfigError(variable: "LAB_TOKENS_FILE", value: path, expected: "a readable file")
        }
        return try parse(text)
    }

    /// What identifies one version of the file: a rename-replace changes the inode, chmod the ctime.
    struct FileVersion: Equatable, Sendable {
        var inode: UInt64
        var size: Int64
        var mtime: (Int, Int)
        var ctime: (Int, Int)
        static func == (a: Self, b: Self) -> Bool {
            a.inode == b.inode && a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime
        }
    }

    private static func version(_ path: String) -> FileVersion? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileVersion(
            inode: UInt64(st.st_ino), size: Int64(st.st_size), mtime: (Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)),
            ctime: (Int(st.st_ctim.tv_sec), Int(st.st_ctim.tv_nsec)))
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
