import ChildProcess
import NIOCore
import RelayProtocol

#if canImport(Glibc)
import Glibc
#endif

/// `claude_update` (with `--allow-claude-update`): runs `claude install` and answers with its
/// output and exit code; the install is killed after `deadline`.
enum ClaudeInstall {
    static let deadline: Duration = .seconds(180)

    /// Runs the install; returns the `response` event that reports it.
    static func run(environment: [String: String], folder: String, deadline: Duration = deadline) async -> RelayEvent {
        let spec = ChildSpec(
            arguments: [ChildSpec.resolve("claude", path: environment["PATH"]) ?? "claude", "install"],
            environment: environment, workingDirectory: folder)
        var output = ""
        var code: Int32 = -1
        do {
            let (text, status) = try await ChildProcess.run(spec) { child in
                child.input.finish()
                return try await collectOutput(of: child, deadline: deadline)
            }
            output = text.trimmed
            code = status.code
        } catch {
            output = "`claude` binary not found in PATH."
        }
        return response(output: output, code: code)
    }

    /// The child's output until it ends; a timer child task kills its group at the deadline.
    static func collectOutput(of child: RunningChild, deadline: Duration) async throws -> String {
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                var collected = ByteBuffer()
                for try await var chunk in child.output { collected.writeBuffer(&chunk) }
                return String(buffer: collected)
            }
            group.addTask {
                guard (try? await Task.sleep(for: deadline)) != nil else { return nil }
                _ = child.signalGroup(SIGKILL)
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let text = result { return text }
            }
            return ""
        }
    }

    static func response(output: String, code: Int32) -> RelayEvent {
        let text =
            code == 0
            ? "Claude Code updated to the latest version.\n\n\(output)\n\nSend any message to start a session with the new version."
            : "Update failed (exit \(code)).\n\n\(output)"
        return RelayEvent("response", text: text, metadata: ["update_exit_code": .int(Int64(code)), "source": "claude_update"])
    }
}
