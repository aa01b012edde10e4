import ChildProcess
import Logging
import NIOCore
import Synchronization

/// Single mode: one `relay-worker serve` subprocess per user on loopback.
///
/// The worker's confinement root (`--workspace-root`), working directory and `HOME` are the user's
/// workspace. Its environment is built from scratch (never the controller's, which holds secrets):
/// `PATH`, locale and `AI_RELAY_*` settings of the controller, then `LAB_WORKER_ENV_FILE`, then `HOME`.
/// Each child runs inside ``ChildProcess/run(_:_:)`` as a child task of ``watchIncidents(_:)`` — the
/// backend's supervision loop, run by the death watcher service — so it is always stopped (SIGTERM to
/// its group, SIGKILL after the grace) and reaped, and its death is reported in line.
public final class ProcessBackend: WorkerBackend {
    public let kind = "process"
    public let currentSpecHash: String
    let binary: String
    let arguments: [String]
    let baseEnvironment: [String: String]
    let workspace: Workspace
    let stopGrace: Duration
    let logger: Logger

    /// A child asked for by ``start(user:progress:)``, for the supervision loop to run.
    private struct Launch: Sendable {
        var user: UserID
        var spec: ChildSpec
        var token: String
        var stop: AsyncStream<Void>
        var started: AsyncStream<Result<Int32, any Error>>.Continuation
    }
    private struct Running {
        var stop: AsyncStream<Void>.Continuation
        var pid: Int32?
        var stopRequested: Bool
        /// Until the supervision loop takes the launch: how to fail the start if it never does.
        var started: AsyncStream<Result<Int32, any Error>>.Continuation?
        /// Callers of stop/shutdown waiting for the child to be gone.
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let running = Mutex<[String: Running]>([:])
    private let launches: AsyncStream<Launch>
    private let launchSink: AsyncStream<Launch>.Continuation

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
        (launches, launchSink) = AsyncStream<Launch>.makeStream()
    }

    public func adoptExisting() async throws -> [WorkerHandle] { [] }

    public func aliveWorkerIDs() async throws -> Set<String> {
        running.withLock { Set($0.values.compactMap { $0.pid.map { "pid:\($0)" } }) }
    }

    public func start(user: UserID, progress: @escaping @Sendable (StartStep) -> Void) async throws -> WorkerHandle {
        progress(.creating)
        let dir = try workspace.ensure(user)
        let port = try FreePort.pick()
        var env = baseEnvironment
        env["HOME"] = dir
        env["USER"] = user.value
        // Over stdin, not the environment: a worker's environ is readable by same-user agents until it
        // makes itself non-dumpable, a pipe read is not repeatable (docs/protocol.md §1).
        let token = WorkerToken.generate()
        let spec = ChildSpec(
            arguments: [binary, "serve", "--host", "127.0.0.1", "--port", String(port), "--workspace-root", dir, "--state-dir", dir + "/" + LabController.sessionsFolder, "--token-stdin", "--exit-with-stdin"]
                + arguments,
            environment: env,
            workingDirectory: dir,
            stopGrace: stopGrace
        )
        progress(.starting)
        let (stopStream, stopContinuation) = AsyncStream<Void>.makeStream()
        let started = AsyncStream<Result<Int32, any Error>>.makeStream()
        running.withLock { $0[user.value] = Running(stop: stopContinuation, pid: nil, stopRequested: false, started: started.continuation) }
        let launch = Launch(user: user, spec: spec, token: token, stop: stopStream, started: started.continuation)
        if case .terminated = launchSink.yield(launch) {
            childEnded(user.value)
            throw WorkerStartError("the controller is shutting down")
        }
        var startResult: Result<Int32, any Error> = .failure(WorkerStartError("worker did not start"))
        for await r in started.stream { startResult = r }
        switch startResult {
        case .success(let pid):
            logger.info("worker process started", metadata: ["user": "\(user)", "pid": "\(pid)", "port": "\(port)"])
            return WorkerHandle(
                user: user, id: "pid:\(pid)", address: WorkerAddress(host: "127.0.0.1", port: port, token: token), specHash: currentSpecHash,
                createdAt: RelayClock.now())
        case .failure(let error):
            if let spawn = error as? SpawnError, spawn.isNotFound {
                throw WorkerStartError("worker executable \(binary) cannot be run")
            }
            throw WorkerStartError("worker failed to start: \(error)")
        }
    }

    /// Runs one child until it exits or a stop is requested, then reports an unrequested exit.
    private func runChild(_ launch: Launch, onDeath: @Sendable (WorkerDeath) async -> Void) async {
        let user = launch.user
        let logger = self.logger
        running.withLock { $0[user.value]?.started = nil }
        var pid: Int32 = 0
        do {
            let (_, status) = try await ChildProcess.run(launch.spec) { child in
                pid = child.pid
                running.withLock { $0[user.value]?.pid = child.pid }
                // stdin stays open for the child's life: its end tells the worker this controller died.
                try? await child.write(launch.token + "\n")
                launch.started.yield(.success(child.pid))
                launch.started.finish()
                await Self.supervise(child, stop: launch.stop, user: user, logger: logger)
            }
            let death = finished(user: user, pid: pid, status: status)
            // Forgotten first: the hub's answer to the death stops this worker, which waits for that.
            childEnded(user.value)
            if let death { await onDeath(death) }
        } catch {
            launch.started.yield(.failure(error))
            launch.started.finish()
            childEnded(user.value)
        }
    }

    /// Forgets the user's child and wakes whoever waits for it to be gone.
    private func childEnded(_ key: String) {
        let waiters = running.withLock { $0.removeValue(forKey: key)?.waiters ?? [] }
        for w in waiters { w.resume() }
    }

    /// Drains the child's output into the log (so it never blocks on a full pipe) until it exits or a stop
    /// is requested.
    private static func supervise(_ child: RunningChild, stop: AsyncStream<Void>, user: UserID, logger: Logger) async {
        // Unstructured: waiting for the exit cannot be cancelled and the child is only killed after this
        // returns, so a child task would hold the group open forever; it ends once the child is reaped.
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
        _ = exitWatcher
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

    /// The death to report, if nobody asked for this exit.
    private func finished(user: UserID, pid: Int32, status: ExitStatus) -> WorkerDeath? {
        let requested = running.withLock { $0[user.value]?.stopRequested ?? true }
        logger.info("worker process ended", metadata: ["user": "\(user)", "pid": "\(pid)", "status": "\(status)", "requested": "\(requested)"])
        guard !requested else { return nil }
        let reason = status.wasSignaled ? "the worker process was \(status)" : "the worker process \(status)"
        return WorkerDeath(user: user, id: "pid:\(pid)", reason: reason, oomKilled: false, exitCode: Int(status.code))
    }

    public func stop(_ handle: WorkerHandle, reason: StopReason) async {
        running.withLock { map in
            guard var r = map[handle.user.value] else { return }
            r.stopRequested = true
            r.stop.yield()
            r.stop.finish()
            map[handle.user.value] = r
        }
        await childGone(handle.user.value)
    }

    /// The supervision loop: runs every child as a child task until cancelled (graceful shutdown of the
    /// death watcher, after ``shutdown()`` has stopped them), reporting the ones that exit on their own.
    public func watchIncidents(_ report: @escaping @Sendable (WorkerIncident) async -> Void) async throws {
        await withDiscardingTaskGroup { group in
            for await launch in launches {
                group.addTask { await self.runChild(launch, onDeath: { await report(.died($0)) }) }
            }
        }
        // Launches the loop never took (it was cancelled): their starts fail instead of waiting forever.
        let untaken: [(String, AsyncStream<Result<Int32, any Error>>.Continuation)] = running.withLock { map in
            map.compactMap { key, r in r.started.map { (key, $0) } }
        }
        for (key, started) in untaken {
            started.yield(.failure(WorkerStartError("the controller is shutting down")))
            started.finish()
            childEnded(key)
        }
    }

    public func isHealthy() async -> Bool { true }

    public func shutdown() async {
        let users: [String] = running.withLock { map in
            for key in map.keys {
                map[key]!.stopRequested = true
                map[key]!.stop.yield()
                map[key]!.stop.finish()
            }
            return Array(map.keys)
        }
        for key in users { await childGone(key) }
    }

    /// Waits until the child of `key` has been reaped (at once if there is none).
    private func childGone(_ key: String) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let waiting: Bool = running.withLock { map in
                guard map[key] != nil else { return false }
                map[key]!.waiters.append(c)
                return true
            }
            if !waiting { c.resume() }
        }
    }
}
