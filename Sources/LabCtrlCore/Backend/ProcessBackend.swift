import ChildProcess
import Logging
import NIOCore
import Synchronization

/// Single mode: one `relay-worker serve` subprocess per user on loopback.
///
/// The worker's confinement root (`--workspace-root`), working directory and `HOME` are the user's
/// workspace. Its environment is built from scratch (never the controller's, which holds secrets):
/// `PATH`, locale and `AI_RELAY_*` settings of the controller, then `LAB_WORKER_ENV_FILE`, then `HOME`.
/// Each child runs inside ``ChildProcess/run(_:_:)`` in its own task, so it is always stopped
/// (SIGTERM to its group, SIGKILL after the grace) and reaped.
public final class ProcessBackend: WorkerBackend {
    public let kind = "process"
    public let currentSpecHash: String
    let binary: String
    let arguments: [String]
    let baseEnvironment: [String: String]
    let workspace: Workspace
    let stopGrace: Duration
    let logger: Logger

    private struct Running {
        var task: Task<Void, Never>
        var stop: AsyncStream<Void>.Continuation
        var stopRequested: Bool
    }
    private let running = Mutex<[String: Running]>([:])
    private let deathSink = Mutex<(@Sendable (WorkerDeath) async -> Void)?>(nil)

    /// - Parameters:
    ///   - binary: absolute path of the worker executable.
    ///   - extraArguments: options appended to `serve` (`--allow-env`, `--allow-mcp-config`).
    ///   - environment: the worker's environment before `HOME` is set.
    public init(
        binary: String, extraArguments: [String], environment: [String: String], workspace: Workspace, stopGrace: Duration,
        logger: Logger
    ) {
        self.binary = binary
        self.arguments = extraArguments
        self.baseEnvironment = environment
        self.workspace = workspace
        self.stopGrace = stopGrace
        self.logger = logger
        self.currentSpecHash = SpecHash.of([binary] + extraArguments + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
    }

    public func adoptExisting() async throws -> [WorkerHandle] { [] }

    public func start(user: UserID, progress: @escaping @Sendable (StartStep) -> Void) async throws -> WorkerHandle {
        progress(.creating)
        let dir = try workspace.ensure(user)
        let port = try FreePort.pick()
        var env = baseEnvironment
        env["HOME"] = dir
        env["USER"] = user.value
        let spec = ChildSpec(
            arguments: [binary, "serve", "--host", "127.0.0.1", "--port", String(port), "--workspace-root", dir] + arguments,
            environment: env,
            workingDirectory: dir,
            stopGrace: stopGrace
        )
        progress(.starting)
        let (stopStream, stopContinuation) = AsyncStream<Void>.makeStream()
        let started = AsyncStream<Result<Int32, any Error>>.makeStream()
        let logger = self.logger
        let key = user.value
        let task = Task {
            var pid: Int32 = 0
            do {
                let (_, status) = try await ChildProcess.run(spec) { child in
                    pid = child.pid
                    started.continuation.yield(.success(child.pid))
                    started.continuation.finish()
                    await Self.supervise(child, stop: stopStream, user: user, logger: logger)
                }
                self.finished(user: user, pid: pid, status: status)
            } catch {
                started.continuation.yield(.failure(error))
                started.continuation.finish()
                self.running.withLock { _ = $0.removeValue(forKey: key) }
            }
        }
        running.withLock { $0[key] = Running(task: task, stop: stopContinuation, stopRequested: false) }
        var startResult: Result<Int32, any Error> = .failure(WorkerStartError("worker did not start"))
        for await r in started.stream { startResult = r }
        switch startResult {
        case .success(let pid):
            logger.info("worker process started", metadata: ["user": "\(user)", "pid": "\(pid)", "port": "\(port)"])
            return WorkerHandle(
                user: user, id: "pid:\(pid)", address: WorkerAddress(host: "127.0.0.1", port: port), specHash: currentSpecHash,
                createdAt: RelayClock.now())
        case .failure(let error):
            if let spawn = error as? SpawnError, spawn.isNotFound {
                throw WorkerStartError("worker executable \(binary) cannot be run")
            }
            throw WorkerStartError("worker failed to start: \(error)")
        }
    }

    /// Drains the child's output into the log (so it never blocks on a full pipe) until it exits or a stop
    /// is requested.
    private static func supervise(_ child: RunningChild, stop: AsyncStream<Void>, user: UserID, logger: Logger) async {
        // Waiting for the exit cannot be cancelled (the child is only killed after this returns), so it
        // runs unstructured and just signals; the drains are cancellable NIO streams.
        let (ended, signal) = AsyncStream<Void>.makeStream()
        let exitWatcher = Task {
            _ = await child.exitStatus()
            signal.yield()
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in stop { break }
                signal.yield()
            }
            group.addTask { await drain(child.output, user: user, stream: "stdout", logger: logger) }
            if let errors = child.errors {
                group.addTask { await drain(errors, user: user, stream: "stderr", logger: logger) }
            }
            for await _ in ended { break }
            group.cancelAll()
        }
        _ = exitWatcher  // finishes by itself once the child is reaped
    }

    private static func drain(_ stream: NIOAsyncChannelInboundStream<ByteBuffer>, user: UserID, stream name: String, logger: Logger) async {
        var pending: [UInt8] = []
        do {
            for try await buffer in stream {
                pending.append(contentsOf: buffer.readableBytesView)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<nl], as: UTF8.self)
                    pending.removeSubrange(...nl)
                    logger.debug("worker \(name): \(line)", metadata: ["user": "\(user)"])
                }
                if pending.count > 64 * 1024 { pending.removeAll() }
            }
        } catch {}
    }

    private func finished(user: UserID, pid: Int32, status: ExitStatus) {
        let entry = running.withLock { $0.removeValue(forKey: user.value) }
        let requested = entry?.stopRequested ?? true
        logger.info("worker process ended", metadata: ["user": "\(user)", "pid": "\(pid)", "status": "\(status)", "requested": "\(requested)"])
        guard !requested, let sink = deathSink.withLock({ $0 }) else { return }
        let reason = status.wasSignaled ? "the worker process was \(status)" : "the worker process \(status)"
        let death = WorkerDeath(user: user, id: "pid:\(pid)", reason: reason, oomKilled: false, exitCode: Int(status.code))
        Task { await sink(death) }
    }

    public func stop(_ handle: WorkerHandle, reason: StopReason) async {
        let task: Task<Void, Never>? = running.withLock { map in
            guard var r = map[handle.user.value] else { return nil }
            r.stopRequested = true
            r.stop.yield()
            r.stop.finish()
            map[handle.user.value] = r
            return r.task
        }
        await task?.value
    }

    public func watchDeaths(_ onDeath: @escaping @Sendable (WorkerDeath) async -> Void) async throws {
        deathSink.withLock { $0 = onDeath }
        // Deaths are reported from each child's task; this only keeps the watcher alive until cancelled.
        try? await Task.sleep(for: .seconds(365 * 24 * 3600))
    }

    public func isHealthy() async -> Bool { true }

    public func shutdown() async {
        let tasks: [Task<Void, Never>] = running.withLock { map in
            for key in map.keys {
                map[key]!.stopRequested = true
                map[key]!.stop.yield()
                map[key]!.stop.finish()
            }
            return map.values.map(\.task)
        }
        for t in tasks { await t.value }
    }
}
