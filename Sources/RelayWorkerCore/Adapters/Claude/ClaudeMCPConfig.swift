import Foundation
import Logging
import RelayProtocol

/// The handshake's `mcp_config` as the private temp file Claude reads with `--mcp-config` (created
/// exclusively, mode 0600; removed when the session ends).
struct ClaudeMCPConfig: Sendable {
    let path: String

    /// Writes the file; nil (logged) when it cannot be created, and the session runs without it.
    static func write(_ config: JSON, logger: Logger) -> ClaudeMCPConfig? {
        let path = NSTemporaryDirectory() + "ai_relay_mcp_\(UUID().uuidString).json"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            logger.warning("could not write the MCP config file; --mcp-config skipped", metadata: ["errno": "\(errno)"])
            return nil
        }
        defer { close(fd) }
        let bytes = config.encoded()
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            logger.warning("could not write the MCP config file; --mcp-config skipped", metadata: ["errno": "\(errno)"])
            unlink(path)
            return nil
        }
        return ClaudeMCPConfig(path: path)
    }

    func remove() { unlink(path) }
}
