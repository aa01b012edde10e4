#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The per-user workspace folder `<LAB_WORKSPACE_ROOT>/<user_id>` on the host.
///
/// Created on first use with mode 0750 and the owner the worker runs as (multi mode: the container
/// user's uid/gid; single mode: the controller's own user). An existing path that is not a real
/// directory (a symlink planted there, say) is refused rather than followed.
public struct Workspace: Sendable {
    public let root: String
    public let owner: (uid: UInt32, gid: UInt32)?

    public init(root: String, owner: (uid: UInt32, gid: UInt32)?) {
        self.root = root
        self.owner = owner
    }

    public func path(for user: UserID) -> String { "\(root)/\(user.value)" }

    /// Creates the root and the user's folder if needed; returns the folder's path.
    @discardableResult
    public func ensure(_ user: UserID) throws -> String {
        try Self.makeDirectories(root, mode: 0o755)
        let dir = path(for: user)
        var st = stat()
        if lstat(dir, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw WorkerStartError("workspace \(dir) exists and is not a directory")
            }
            return dir
        }
        guard mkdir(dir, 0o750) == 0 || errno == EEXIST else {
            throw WorkerStartError("cannot create workspace \(dir): \(String(cString: strerror(errno)))")
        }
        if let owner {
            guard lchown(dir, owner.uid, owner.gid) == 0 else {
                throw WorkerStartError("cannot give workspace \(dir) to \(owner.uid):\(owner.gid): \(String(cString: strerror(errno)))")
            }
        }
        return dir
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String, mode: mode_t) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw WorkerStartError("\(path) is not a directory") }
            return
        }
        let parent = path.split(separator: "/", omittingEmptySubsequences: true).dropLast().joined(separator: "/")
        if !parent.isEmpty { try makeDirectories("/" + parent, mode: mode) }
        guard mkdir(path, mode) == 0 || errno == EEXIST else {
            throw WorkerStartError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }
}
