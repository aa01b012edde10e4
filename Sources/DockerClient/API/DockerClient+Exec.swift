extension DockerClient {
    /// `POST /containers/{id}/exec`: prepares a process in a running container; returns the exec id.
    public func createExec(_ container: String, _ spec: ExecSpec) async throws -> String {
        let request = try await request(
            "POST", "/containers/\(Query.segment(container))/exec", body: try jsonBody(spec),
            contentType: "application/json")
        return try await send(request, as: IDResponse.self).id
    }

    /// `POST /exec/{id}/start`: runs the process and streams its output until it ends. Pass `tty: true` if
    /// the exec was created with a TTY (output is then raw, reported as stdout).
    public func startExec(_ id: String, tty: Bool = false, timeout: Duration? = nil) async throws -> LogStream {
        struct Start: Encodable {
            let detach = false
            let tty: Bool
            enum CodingKeys: String, CodingKey { case detach = "Detach", tty = "Tty" }
        }
        let request = try await request(
            "POST", "/exec/\(Query.segment(id))/start", body: try jsonBody(Start(tty: tty)),
            contentType: "application/json", timeout: timeout.map { .custom($0) } ?? .none)
        return LogStream(chunks: try await openStream(request).body, multiplexed: !tty)
    }

    /// `GET /exec/{id}/json`: running state and exit code.
    public func inspectExec(_ id: String) async throws -> ExecInspect {
        try await send(try await request("GET", "/exec/\(Query.segment(id))/json"), as: ExecInspect.self)
    }

    /// Runs `command` in a running container and returns its exit code, stdout and stderr.
    public func exec(
        _ container: String, command: [String], user: String? = nil, workingDir: String? = nil,
        environment: [String]? = nil, timeout: Duration? = nil
    ) async throws -> ExecResult {
        let id = try await createExec(
            container, ExecSpec(cmd: command, env: environment, user: user, workingDir: workingDir))
        var result = ExecResult(exitCode: -1, stdout: [], stderr: [])
        for try await chunk in try await startExec(id, timeout: timeout) {
            if chunk.source == .stderr { result.stderr += chunk.bytes } else { result.stdout += chunk.bytes }
        }
        try Task.checkCancellation()
        // The engine records the exit code as the output stream closes; allow it a moment, bounded.
        for attempt in 0..<100 {
            let state = try await inspectExec(id)
            if !state.running, let code = state.exitCode {
                result.exitCode = code
                return result
            }
            try await Task.sleep(for: .milliseconds(min(5 * (attempt + 1), 50)))
        }
        throw DockerError(.timeout, message: "exec \(id) output ended but the engine reports it still running")
    }
}
