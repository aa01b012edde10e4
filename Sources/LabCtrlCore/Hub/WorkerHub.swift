import Logging
import NIOWebSocket
import RelayProtocol
import Synchronization

/// The one place that decides about workers: per-user single-flight start, readiness, the set of
/// proxied connections per worker, deaths, reaping and shutdown. Backends only execute.
///
/// Every state change happens on this actor; the hot path (frames) never touches it — connections
/// track their own activity (``ClientConnection``) and the reaper reads it once per pass.
public actor WorkerHub {
    public typealias Instant = ContinuousClock.Instant

    /// Limits and timings the hub needs from ``LabConfig``.
    public struct Settings: Sendable {
        public var maxWorkers: Int
        public var readinessTimeout: Duration
        public var slowStartInterval: Duration
        public var policy: ReaperPolicy

        public init(_ config: LabConfig) {
            maxWorkers = config.maxWorkers
            readinessTimeout = .seconds(double: config.containerWSTimeout)
            slowStartInterval = .seconds(double: config.containerStartupDelay)
            policy = ReaperPolicy(
                idleTimeout: .seconds(double: config.idleTimeout), warningLead: .seconds(double: config.idleWarning),
                maxTurn: .seconds(double: config.maxTurn))
        }
    }

    enum Phase {
        case starting(Task<WorkerHandle, any Error>, ProgressFanout)
        case running
        case stopping(Task<Void, Never>)
    }

    struct Entry {
        var phase: Phase
        var handle: WorkerHandle?
        var connections: [Int: ClientConnection] = [:]
        var lastActivity: Instant
        var warning: (sentAt: Instant, deadline: Instant)?
    }

    let backend: any WorkerBackend
    let settings: Settings
    let metrics: LabMetrics
    let logger: Logger
    private let clock = ContinuousClock()
    private var entries: [UserID: Entry] = [:]
    /// Deaths by worker id, kept briefly so a proxy that lost its upstream can say why.
    private var recentDeaths: [String: WorkerDeath] = [:]
    private var deathOrder: [String] = []
    private var accepting = true

    public init(backend: any WorkerBackend, settings: Settings, metrics: LabMetrics, logger: Logger) {
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    // ---- start-up ------------------------------------------------------------------------

    /// Adopts the workers the backend already runs (controller restart). Returns how many.
    @discardableResult
    public func adoptExisting() async throws -> Int {
        let handles = try await backend.adoptExisting()
        let now = clock.now
        for h in handles where entries[h.user] == nil {
            entries[h.user] = Entry(phase: .running, handle: h, lastActivity: now)
            logger.info(
                "adopted worker",
                metadata: ["user": "\(h.user)", "id": "\(h.id)", "address": "\(h.address)", "stale": "\(h.specHash != backend.currentSpecHash)"])
        }
        updateGauges()
        return handles.count
    }

    // ---- ensure / attach -------------------------------------------------------------------

    /// Makes sure `user` has a ready worker and registers `connection` on it (atomically with the
    /// check, so the reaper never sees a worker in use without its connection). Concurrent callers
    /// for one user share one start; all of them receive its progress.
    public func ensure(
        _ user: UserID, attaching connection: ClientConnection? = nil, progress: (@Sendable (LabProgress) -> Void)? = nil
    ) async throws -> WorkerHandle {
        while true {
            guard accepting else { throw WorkerStartError("the controller is shutting down") }
            if let entry = entries[user] {
                switch entry.phase {
                case .running:
                    let handle = entry.handle!
                    if handle.specHash != backend.currentSpecHash, entry.connections.isEmpty {
                        logger.info("replacing idle worker with outdated settings", metadata: ["user": "\(user)", "id": "\(handle.id)"])
                        await stop(user, reason: .specChanged)
                        continue
                    }
                    attach(connection, to: user)
                    return handle
                case .starting(let task, let fanout):
                    let token = progress.map { fanout.subscribe($0) }
                    defer { if let token { fanout.unsubscribe(token) } }
                    let handle = try await task.value
                    guard case .running = entries[user]?.phase, entries[user]?.handle?.id == handle.id else { continue }
                    attach(connection, to: user)
                    return handle
                case .stopping(let task):
                    await task.value
                    await Task.yield()
                    continue
                }
            }
            if settings.maxWorkers > 0, entries.count >= settings.maxWorkers {
                throw WorkerStartError("the lab is at its limit of \(settings.maxWorkers) workers; try again later")
            }
            let fanout = ProgressFanout()
            let task = Task { try await self.bringUp(user, fanout: fanout) }
            entries[user] = Entry(phase: .starting(task, fanout), handle: nil, lastActivity: clock.now)
            updateGauges()
        }
    }

    /// Body of the single start task of a user: create, start, probe.
    private func bringUp(_ user: UserID, fanout: ProgressFanout) async throws -> WorkerHandle {
        let t0 = clock.now
        var handle: WorkerHandle?
        do {
            let started = try await backend.start(user: user) { step in fanout.emit(.step(step)) }
            handle = started
            entries[user]?.handle = started
            fanout.emit(.waiting)
            try await ReadinessProbe.waitUntilReady(
                started.address, timeout: settings.readinessTimeout, slowInterval: settings.slowStartInterval,
                stillAlive: { await self.isAlive(started.id) },
                onSlow: { elapsed in
                    var p = LabProgress.waiting
                    p.elapsedSeconds = elapsed.secondsDouble
                    fanout.emit(p)
                },
                logger: logger)
            let took = clock.now - t0
            metrics.spawnSeconds.record(took)
            entries[user]?.phase = .running
            entries[user]?.lastActivity = clock.now
            updateGauges()
            logger.info("worker ready", metadata: ["user": "\(user)", "id": "\(started.id)", "address": "\(started.address)", "took": "\(took)"])
            return started
        } catch {
            logger.error("worker start failed", metadata: ["user": "\(user)", "error": "\(error)"])
            if let handle { await backend.stop(handle, reason: .failedStart) }
            metrics.stopped(.failedStart)
            entries[user] = nil
            updateGauges()
            throw error
        }
    }

    private func attach(_ connection: ClientConnection?, to user: UserID) {
        entries[user]?.lastActivity = clock.now
        guard let connection else { return }
        entries[user]?.connections[connection.id] = connection
        if entries[user]?.warning != nil { connection.setWarned(true) }
        metrics.connections.increment()
    }

    /// Unregisters a connection; the time of its last user frame (or now, if it was busy) counts as the
    /// worker's activity.
    public func detach(_ connection: ClientConnection) {
        guard var entry = entries[connection.user], entry.connections.removeValue(forKey: connection.id) != nil else { return }
        metrics.connections.decrement()
        let a = connection.activity
        entry.lastActivity = max(entry.lastActivity, a.busySince == nil ? a.lastActivity : clock.now)
        entries[connection.user] = entry
    }

    // ---- stop / death ------------------------------------------------------------------------

    /// Stops the user's worker (the workspace stays). Open connections get `lab.stopped` and a close.
    public func stop(_ user: UserID, reason: StopReason) async {
        guard let entry = entries[user] else { return }
        logger.debug("stop requested", metadata: ["user": "\(user)", "reason": "\(reason.rawValue)"])
        switch entry.phase {
        case .starting(let task, _):
            _ = try? await task.value
            await stop(user, reason: reason)
        case .stopping(let task):
            await task.value
        case .running:
            let handle = entry.handle!
            let task = beginStop(user, handle: handle, reason: reason)
            let (text, closeReason) = Self.stopWording(reason)
            await terminateAll(
                Array(entry.connections.values),
                event: { LabEvents.status("lab.stopped", text, sessionID: $0.sessionID, metadata: ["reason": .string(reason.rawValue)]) },
                code: .goingAway, reason: closeReason)
            await task.value
        }
    }

    /// Marks the worker as stopping and stops it in a task that also forgets the entry, on this actor,
    /// *before* it completes — so whoever awaits the task never sees a finished stop still listed (a
    /// waiter that looped on the stale entry would spin without ever yielding the actor).
    private func beginStop(_ user: UserID, handle: WorkerHandle, reason: StopReason) -> Task<Void, Never> {
        let backend = self.backend
        let task = Task {
            await backend.stop(handle, reason: reason)
            self.stopFinished(user, handle: handle, reason: reason)
        }
        entries[user]?.phase = .stopping(task)
        updateGauges()
        return task
    }

    private func stopFinished(_ user: UserID, handle: WorkerHandle, reason: StopReason) {
        if case .stopping = entries[user]?.phase, entries[user]?.handle?.id == handle.id { entries[user] = nil }
        metrics.stopped(reason)
        updateGauges()
        logger.info("worker stopped", metadata: ["user": "\(user)", "id": "\(handle.id)", "reason": "\(reason.rawValue)"])
    }

    static func stopWording(_ reason: StopReason) -> (text: String, close: String) {
        switch reason {
        case .idle: ("Your lab worker was stopped after a period without activity. Your files are kept; reconnect to start it again.", "idle timeout")
        case .stuck: ("Your lab worker was stopped because a turn ran past the time limit. Your files are kept.", "turn time limit")
        case .admin: ("Your lab worker was stopped by an administrator. Your files are kept.", "stopped by administrator")
        case .specChanged: ("Your lab worker is being replaced with updated settings. Reconnect to continue.", "worker replaced")
        case .shutdown: ("The lab controller is shutting down.", "controller shutting down")
        case .dead, .failedStart: ("Your lab worker stopped.", "worker stopped")
        }
    }

    /// A worker stopped on its own: clients get an `error` saying why, the worker is cleaned up, and the
    /// next connect starts a new one.
    public func workerDied(_ death: WorkerDeath) async {
        recentDeaths[death.id] = death
        deathOrder.append(death.id)
        if deathOrder.count > 256 { recentDeaths[deathOrder.removeFirst()] = nil }
        guard let entry = entries[death.user], entry.handle?.id == death.id else { return }
        if case .stopping = entry.phase { return }  // we stopped it ourselves
        metrics.workerDied(oom: death.oomKilled)
        logger.warning("worker died", metadata: ["user": "\(death.user)", "id": "\(death.id)", "reason": "\(death.reason)"])
        guard case .running = entry.phase else { return }  // a starting worker: its probe fails and cleans up
        let task = beginStop(death.user, handle: entry.handle!, reason: .dead)
        await terminateAll(
            Array(entry.connections.values), event: { Self.deathEvent(death, sessionID: $0.sessionID) }, code: .unexpectedServerError,
            reason: "worker stopped")
        await task.value
    }

    static func deathEvent(_ death: WorkerDeath, sessionID: String) -> RelayEvent {
        LabEvents.error(
            "Your lab worker stopped unexpectedly: \(death.reason). Your files are kept; reconnect to start a new worker.",
            sessionID: sessionID,
            metadata: ["lab": ["reason": .string(death.oomKilled ? "oom" : "exited"), "exit_code": death.exitCode.map { .int(Int64($0)) } ?? .null]])
    }

    func isAlive(_ id: String) -> Bool { recentDeaths[id] == nil }

    /// Why worker `id` died, waiting up to `wait` for the backend to report it (the proxy often notices
    /// a lost connection a moment before the engine's event arrives).
    public func deathReason(of id: String, wait: Duration) async -> WorkerDeath? {
        let deadline = clock.now + wait
        while true {
            if let d = recentDeaths[id] { return d }
            if clock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    // ---- reaper ------------------------------------------------------------------------------

    /// One reaper pass: warnings, cancellations, reaps and replacement of outdated idle workers.
    public func reapPass() async {
        await backend.refreshSpec()
        let now = clock.now
        var toStop: [(UserID, StopReason)] = []
        for (user, entry) in entries {
            guard case .running = entry.phase, let handle = entry.handle else { continue }
            if handle.specHash != backend.currentSpecHash, entry.connections.isEmpty {
                toStop.append((user, .specChanged))
                continue
            }
            var last = entry.lastActivity
            var busy: Instant?
            for c in entry.connections.values {
                let a = c.activity
                last = max(last, a.lastActivity)
                if let b = a.busySince, busy == nil || b < busy! { busy = b }
            }
            let facts = ReaperPolicy.Facts(lastActivity: last, busySince: busy, connections: entry.connections.count, warning: entry.warning)
            switch settings.policy.decide(facts, now: now) {
            case .keep:
                break
            case .cancelWarning:
                cancelWarning(user)
            case .warn(let deadline):
                entries[user]?.warning = (now, deadline)
                let seconds = Int((deadline - now).secondsDouble.rounded(.up))
                for c in entry.connections.values {
                    c.setWarned(true)
                    let event = LabEvents.status(
                        "lab.idle_warning",
                        "Your lab worker will be stopped in \(seconds) s for inactivity. Send anything to keep it running.",
                        sessionID: c.sessionID, metadata: ["seconds_left": .int(Int64(seconds))])
                    Task { await c.inject(event) }
                }
                logger.info("idle warning sent", metadata: ["user": "\(user)", "seconds_left": "\(seconds)"])
            case .reap(let reason):
                toStop.append((user, reason))
            }
        }
        for (user, reason) in toStop { await stop(user, reason: reason) }
    }

    /// A user frame arrived while a warning was out: the warning is void.
    public func cancelWarning(_ user: UserID) {
        guard let entry = entries[user], entry.warning != nil else { return }
        entries[user]?.warning = nil
        for c in entry.connections.values {
            c.setWarned(false)
            let event = LabEvents.status("lab.idle_warning_cancelled", "Activity seen; your lab worker keeps running.", sessionID: c.sessionID)
            Task { await c.inject(event) }
        }
        logger.info("idle warning cancelled", metadata: ["user": "\(user)"])
    }

    // ---- operations ------------------------------------------------------------------------

    /// What the admin API lists.
    public struct WorkerInfo: Sendable {
        public var user: UserID
        public var state: String
        public var id: String?
        public var address: String?
        public var connections: Int
        public var busy: Bool
        public var idleSeconds: Double
        public var lastActivity: Double
        public var createdAt: Double?
        public var outdated: Bool
        public var adopted: Bool
    }

    public func snapshot() -> [WorkerInfo] {
        let now = clock.now
        let wallNow = RelayClock.now()
        return entries.map { user, e in
            var last = e.lastActivity
            var busy = false
            for c in e.connections.values {
                let a = c.activity
                last = max(last, a.lastActivity)
                if a.busySince != nil { busy = true }
            }
            let idle = busy ? 0 : (now - last).secondsDouble
            let state: String =
                switch e.phase {
                case .starting: "starting"
                case .running: "running"
                case .stopping: "stopping"
                }
            return WorkerInfo(
                user: user, state: state, id: e.handle?.id, address: e.handle.map { "\($0.address)" }, connections: e.connections.count,
                busy: busy, idleSeconds: idle, lastActivity: wallNow - (now - last).secondsDouble, createdAt: e.handle?.createdAt,
                outdated: e.handle.map { $0.specHash != backend.currentSpecHash } ?? false, adopted: e.handle?.adopted ?? false)
        }.sorted { $0.user < $1.user }
    }

    /// Graceful shutdown: refuse new work, close every client socket with a reason, then let the backend
    /// finish (subprocesses stop; containers keep running for the next start to adopt).
    public func shutdown() async {
        accepting = false
        let all = entries.values.flatMap { $0.connections.values }
        let (text, reason) = Self.stopWording(.shutdown)
        await terminateAll(all, event: { LabEvents.status("lab.shutdown", text, sessionID: $0.sessionID) }, code: .goingAway, reason: reason)
        await backend.shutdown()
        logger.info("hub shut down", metadata: ["connections_closed": "\(all.count)"])
    }

    private func terminateAll(
        _ connections: [ClientConnection], event: @escaping @Sendable (ClientConnection) -> RelayEvent, code: WebSocketErrorCode, reason: String
    ) async {
        guard !connections.isEmpty else { return }
        _ = try? await withTimeout(.seconds(5)) {
            await withTaskGroup(of: Void.self) { group in
                for c in connections { group.addTask { await c.terminate(event: event(c), code: code, reason: reason) } }
            }
        }
    }

    private func updateGauges() {
        var s = 0, r = 0, st = 0
        for e in entries.values {
            switch e.phase {
            case .starting: s += 1
            case .running: r += 1
            case .stopping: st += 1
            }
        }
        metrics.setWorkers(starting: s, running: r, stopping: st)
    }
}

/// Progress of one start, delivered to every client waiting for it (in order, synchronously).
final class ProgressFanout: Sendable {
    private struct State {
        var next = 0
        var sinks: [Int: @Sendable (LabProgress) -> Void] = [:]
        var history: [LabProgress] = []
    }
    private let state = Mutex(State())

    /// Adds a sink; it first receives the steps already emitted.
    func subscribe(_ sink: @escaping @Sendable (LabProgress) -> Void) -> Int {
        let (token, history) = state.withLock { s in
            s.next += 1
            s.sinks[s.next] = sink
            return (s.next, s.history)
        }
        for p in history { sink(p) }
        return token
    }

    func unsubscribe(_ token: Int) { state.withLock { _ = $0.sinks.removeValue(forKey: token) } }

    func emit(_ p: LabProgress) {
        let sinks = state.withLock { s in
            s.history.append(p)
            return Array(s.sinks.values)
        }
        for sink in sinks { sink(p) }
    }
}
