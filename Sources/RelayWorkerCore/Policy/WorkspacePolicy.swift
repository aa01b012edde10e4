#if canImport(Glibc)
import Glibc
#endif

/// Resolves a session folder and keeps it inside the workspace root:
/// symlinks are resolved before the check, the root itself is allowed, and a relative folder is
/// taken relative to the root.
public enum WorkspacePolicy {
    public enum Failure: Error, Equatable {
        case notFound(String)
        case outsideRoot(folder: String, root: String)

        public var message: String {
            switch self {
            case .notFound(let folder): return "Working folder not found: \(folder)"
            case .outsideRoot(let folder, let root):
                return "Folder '\(folder)' is outside the permitted workspace root '\(root)'."
            }
        }
    }

    public static func resolve(_ folder: String, root: String?, cwd: String) throws(Failure) -> String {
        let base = root ?? cwd
        let absolute = folder.hasPrefix("/") ? folder : (base.hasSuffix("/") ? base + folder : base + "/" + folder)
        guard let real = realPath(absolute), isDirectory(real) else { throw .notFound(normalize(absolute)) }
        guard let root else { return real }
        let realRoot = realPath(root) ?? root
        if real == realRoot || real.hasPrefix(realRoot == "/" ? "/" : realRoot + "/") { return real }
        throw .outsideRoot(folder: normalize(absolute), root: realRoot)
    }

    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Lexical normalisation for messages (like Python's `os.path.abspath`).
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." || part.isEmpty { continue }
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
