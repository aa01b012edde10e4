import CSpawn
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Errors from starting a child.
public struct SpawnError: Error, CustomStringConvertible {
    public let errno: Int32
    public let executable: String
    /// The forked child when the exec itself failed (already reaped), else nil.
    public var pid: pid_t? = nil
    public var isNotFound: Bool { errno == ENOENT || errno == EACCES || errno == ENOEXEC }
    public var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
}

/// A running child with non-blocking, back-pressured pipes (or one PTY).
///
/// Reads go through NIO, so a consumer that stops iterating `output` stops reading the pipe and the
/// child blocks on write: back-pressure all the way to the agent, no unbounded buffers.
public struct RunningChild: Sendable {
    public let pid: pid_t
    /// stdout (or the PTY output).
    public let output: NIOAsyncChannelInboundStream<ByteBuffer>
    /// stderr; `nil` on a PTY, where it is merged into `output`.
    public let errors: NIOAsyncChannelInboundStream<ByteBuffer>?
    /// stdin (or the PTY input). `finish()` closes it.
    public let input: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let ptyFD: Int32?

    /// Writes bytes to the child's stdin; waits while the pipe is full.
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await input.write(ByteBuffer(bytes: bytes))
    }

    public func write(_ string: String) async throws {
        try await input.write(ByteBuffer(string: string))
    }

    /// Signals the child's whole process group (the child is a session leader). Does nothing once the
    /// child has been reaped (its group was killed then, and its id may be reused); returns whether a
    /// signal was sent.
    @discardableResult
    public func signalGroup(_ signal: Int32) -> Bool {
        Reaper.shared.signalGroup(pid, signal)
    }

    public var hasExited: Bool { Reaper.shared.hasExited(pid) }

    public func exitStatus() async -> ExitStatus { await Reaper.shared.exitStatus(of: pid) }

    /// Resizes the PTY; no-op for pipes.
    public func resize(rows: UInt16, columns: UInt16) {
        if let ptyFD { _ = lab_pty_resize(ptyFD, rows, columns) }
    }
}

public enum ChildProcess {
    /// Makes this process a child subreaper, so orphaned descendants are re-parented to it and reaped
    /// like PID 1 reaps them in a container. Returns false if the kernel refused.
    @discardableResult
    public static func adoptOrphans() -> Bool { lab_become_subreaper() == 0 }

    /// Runs a child for the duration of `body`, then stops it: stdin is closed, the process group gets
    /// SIGTERM, and SIGKILL after `spec.stopGrace`. The child is always reaped, also when `body` throws
    /// or the task is cancelled; when it exits, whatever is left of its process group is SIGKILLed.
    /// Returns the body's result and the exit status.
    public static func run<Result: Sendable>(
        _ spec: ChildSpec,
        _ body: (RunningChild) async throws -> Result
    ) async throws -> (result: Result, status: ExitStatus) {
        let child = try await spawn(spec)
        let channels: Channels
        do {
            channels = try await bootstrap(child)
        } catch {
            _ = Reaper.shared.signalGroup(child.pid, SIGKILL)
            _ = await Reaper.shared.exitStatus(of: child.pid)
            Reaper.shared.forget(child.pid)
            throw error
        }
        let outcome: Swift.Result<Result, any Error> = await channels.main.executeThenCloseResult { output, input in
            if let err = channels.err {
                return await err.executeThenCloseResult { errors, _ in
                    await capture { try await body(RunningChild(pid: child.pid, output: output, errors: errors, input: input, ptyFD: channels.ptyFD)) }
                }
            }
            return await capture { try await body(RunningChild(pid: child.pid, output: output, errors: nil, input: input, ptyFD: channels.ptyFD)) }
        }
        let status = await stop(pid: child.pid, grace: spec.stopGrace)
        Reaper.shared.forget(child.pid)
        return (try outcome.get(), status)
    }

    /// SIGTERM to the group, then SIGKILL after `grace`; nothing if the child was already reaped (the
    /// reaper killed the rest of its group then). The SIGKILL timer is an event-loop task, not a
    /// `Task.sleep`, so a cancelled caller still gives the child its grace and waits for it to be gone.
    static func stop(pid: pid_t, grace: Duration) async -> ExitStatus {
        guard Reaper.shared.signalGroup(pid, SIGTERM) else { return await Reaper.shared.exitStatus(of: pid) }
        let killer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(grace)) {
            _ = Reaper.shared.signalGroup(pid, SIGKILL)
        }
        let status = await Reaper.shared.exitStatus(of: pid)
        killer.cancel()
        return status
    }

    private struct Channels: Sendable {
        let main: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let err: NIOAsyncChannel<ByteBuffer, ByteBuffer>?
        let ptyFD: Int32?
    }

    private static func bootstrap(_ child: lab_child) async throws -> Channels {
        let group = MultiThreadedEventLoopGroup.singleton
        let config = NIOAsyncChannel<ByteBuffer, ByteBuffer>.Configuration(isOutboundHalfClosureEnabled: true)
        if child.stderr_fd < 0 {
            let main = try await NIOPipeBootstrap(group: group)
                .takingOwnershipOfDescriptor(inputOutput: child.stdout_fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel, configuration: config)
                    }
                }
            return Channels(main: main, err: nil, ptyFD: child.stdout_fd)
        }
        let main = try await NIOPipeBootstrap(group: group)
            .takingOwnershipOfDescriptors(input: child.stdout_fd, output: child.stdin_fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel, configuration: config)
                }
            }
        let err = try await NIOPipeBootstrap(group: group)
            .takingOwnershipOfDescriptor(input: child.stderr_fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return Channels(main: main, err: err, ptyFD: nil)
    }

    /// Forks under the reaper's lock, then waits for the exec outcome. A failed exec is reaped by the
    /// reaper like any child before the error is thrown.
    private static func spawn(_ spec: ChildSpec) async throws -> lab_child {
        let executable = spec.arguments.first ?? ""
        var argv = spec.arguments.map { strdup($0) }
        argv.append(nil)
        var envp = spec.environment.map { strdup("\($0.key)=\($0.value)") }
        envp.append(nil)
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child = lab_child()
        let rows = spec.terminal?.rows ?? 0, columns = spec.terminal?.columns ?? 0
        let rc = Reaper.shared.spawn(&child) { child in
            lab_spawn(executable, argv, envp, spec.workingDirectory, rows, columns, &child)
        }
        guard rc == 0 else { throw SpawnError(errno: rc, executable: executable) }
        let execError = lab_spawn_await_exec(child.report_fd)
        guard execError == 0 else {
            lab_child_close(&child)
            _ = Reaper.shared.signalGroup(child.pid, SIGKILL)  // normally exiting already; never left running
            _ = await Reaper.shared.exitStatus(of: child.pid)
            Reaper.shared.forget(child.pid)
            throw SpawnError(errno: execError, executable: executable, pid: child.pid)
        }
        return child
    }
}

private func capture<R>(_ body: () async throws -> R) async -> Swift.Result<R, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

extension NIOAsyncChannel where Inbound: Sendable, Outbound: Sendable {
    /// `executeThenClose` for a body that reports its own failure as a value, so channel-close errors
    /// never hide the body's outcome.
    fileprivate func executeThenCloseResult<R: Sendable>(
        _ body: (NIOAsyncChannelInboundStream<Inbound>, NIOAsyncChannelOutboundWriter<Outbound>) async -> Swift.Result<R, any Error>
    ) async -> Swift.Result<R, any Error> {
        var result: Swift.Result<R, any Error> = .failure(CancellationError())
        do {
            try await self.executeThenClose { inbound, outbound in
                result = await body(inbound, outbound)
            }
        } catch {
            if case .failure = result {} else { return result }
            return .failure(error)
        }
        return result
    }
}
