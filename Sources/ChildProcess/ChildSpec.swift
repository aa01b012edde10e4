/// What to run. The executable is resolved against the child's own `PATH` by `ChildSpec.resolve`.
public struct ChildSpec: Sendable {
    /// argv, including argv[0].
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String
    /// Run on a PTY of this size (rows, columns) instead of pipes.
    public var terminal: (rows: UInt16, columns: UInt16)?
    /// SIGTERM-to-SIGKILL grace when the child is stopped.
    public var stopGrace: Duration

    public init(
        arguments: [String],
        environment: [String: String],
        workingDirectory: String,
        terminal: (rows: UInt16, columns: UInt16)? = nil,
        stopGrace: Duration = .seconds(5)
    ) {
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.terminal = terminal
        self.stopGrace = stopGrace
    }

    /// Finds `name` the way a shell would: a name with a slash is taken as is, otherwise the first
    /// executable file of that name on `path`.
    public static func resolve(_ name: String, path: String?) -> String? {
        if name.isEmpty { return nil }
        if name.contains("/") { return isExecutableFile(name) ? name : nil }
        for dir in (path ?? "").split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = "\(dir)/\(name)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension ChildSpec {
    /// This process's environment, the base that children start from.
    public static func currentEnvironment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}
