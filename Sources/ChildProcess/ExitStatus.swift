/// How a child ended. `code` follows the Python convention the relay protocol uses on the wire:
/// the exit code, or the negative signal number when the child was killed.
public struct ExitStatus: Sendable, Equatable, CustomStringConvertible {
    public let code: Int32

    public init(code: Int32) { self.code = code }

    public var wasSignaled: Bool { code < 0 }
    public var description: String { wasSignaled ? "killed by signal \(-code)" : "exited with \(code)" }
}
