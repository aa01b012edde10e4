/// Body of `POST /containers/{id}/exec`: a process to run inside a running container.
public struct ExecSpec: Encodable, Sendable {
    public var cmd: [String]
    public var env: [String]?
    public var user: String?
    public var workingDir: String?
    public var tty: Bool
    public var attachStdout: Bool
    public var attachStderr: Bool
    public var privileged: Bool?

    public init(
        cmd: [String], env: [String]? = nil, user: String? = nil, workingDir: String? = nil, tty: Bool = false,
        attachStdout: Bool = true, attachStderr: Bool = true, privileged: Bool? = nil
    ) {
        self.cmd = cmd
        self.env = env
        self.user = user
        self.workingDir = workingDir
        self.tty = tty
        self.attachStdout = attachStdout
        self.attachStderr = attachStderr
        self.privileged = privileged
    }

    enum CodingKeys: String, CodingKey {
        case cmd = "Cmd", env = "Env", user = "User", workingDir = "WorkingDir", tty = "Tty"
        case attachStdout = "AttachStdout", attachStderr = "AttachStderr", privileged = "Privileged"
    }
}

/// `GET /exec/{id}/json`.
public struct ExecInspect: Codable, Sendable {
    public var id: String
    public var running: Bool
    /// `nil` while running.
    public var exitCode: Int?
    public var containerID: String?
    public var pid: Int?

    enum CodingKeys: String, CodingKey {
        case id = "ID", running = "Running", exitCode = "ExitCode", containerID = "ContainerID", pid = "Pid"
    }
}

/// Result of ``DockerClient/exec(_:command:user:workingDir:environment:timeout:)``.
public struct ExecResult: Sendable {
    public var exitCode: Int
    public var stdout: [UInt8]
    public var stderr: [UInt8]

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Reply of create calls that return only an id (`{"Id": "…"}`).
struct IDResponse: Codable, Sendable {
    var id: String
    enum CodingKeys: String, CodingKey { case id = "Id" }
}
