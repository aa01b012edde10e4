#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Resolves a handshake `folder` inside the user's home and refuses anything that leaves it.
///
/// The walk is done component by component on the host copy of the workspace, following symlinks
/// the way the kernel would *inside the worker*: an absolute link target is read in the worker's view
/// (`workerHome` = the container home in multi mode, the workspace itself in single mode). Any step
/// above the home — `..`, an absolute path elsewhere, a symlink pointing out — is a refusal, even if
/// a later step would come back in. Missing components are allowed (the worker then reports
/// "Working folder not found").
public struct FolderResolver: Sendable {
    /// The workspace on the controller's filesystem, `<root>/<user>`.
    public let hostHome: String
    /// The same folder as the worker sees it.
    public let workerHome: String

    public init(hostHome: String, workerHome: String) {
        self.hostHome = hostHome
        self.workerHome = workerHome
    }

    public enum Refusal: Error, Equatable {
        case outside(String)
        case invalid(String)
    }

    /// The folder to hand to the worker (an absolute path in its view).
    public func resolve(_ folder: String?) -> Result<String, Refusal> {
        let requested = folder ?? ""
        guard requested.utf8.count <= 4096, !requested.utf8.contains(0) else { return .failure(.invalid(requested)) }
        var rest: [Substring]
        if requested.hasPrefix("/") {
            guard let inside = Self.relative(requested, to: workerHome) else { return .failure(.outside(requested)) }
            rest = inside
        } else {
            rest = requested.split(separator: "/", omittingEmptySubsequences: true)
        }
        var stack: [Substring] = []
        var links = 0
        while !rest.isEmpty {
            let c = rest.removeFirst()
            if c == "." { continue }
            if c == ".." {
                guard !stack.isEmpty else { return .failure(.outside(requested)) }
                stack.removeLast()
                continue
            }
            let hostPath = hostHome + "/" + (stack + [c]).joined(separator: "/")
            guard let target = Self.symlinkTarget(hostPath) else {
                stack.append(c)
                continue
            }
            links += 1
            guard links <= 40 else { return .failure(.invalid(requested)) }
            if target.hasPrefix("/") {
                guard let inside = Self.relative(target, to: workerHome) else { return .failure(.outside(requested)) }
                stack = []
                rest = inside + rest
            } else {
                rest = target.split(separator: "/", omittingEmptySubsequences: true) + rest
            }
        }
        return .success(stack.isEmpty ? workerHome : workerHome + "/" + stack.joined(separator: "/"))
    }

    /// Components of `path` below `home`, or nil when `path` is not `home` or inside it (checked after
    /// lexical clean-up of `.` and empty parts; `..` is kept for the walk to judge).
    static func relative(_ path: String, to home: String) -> [Substring]? {
        let p = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let h = home.split(separator: "/", omittingEmptySubsequences: true)
        guard p.count >= h.count, Array(p[0..<h.count]) == h else { return nil }
        return Array(p[h.count...])
    }

    /// The target of `path` if it is a symlink.
    static func symlinkTarget(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { return nil }
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
