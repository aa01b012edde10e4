import Deadline
import Logging
import NIOWebSocket
import RelayProtocol

/// The one place that decides about workers: per-user single-flight start, readiness, the set of
/// proxied connections per worker, deaths, reaping and shutdown. Backends only execute.
///
/// Every state change happens on this actor; the hot path (frames) never touches it — connections
/// track their own activity (``HubConnection``) and the reaper reads it once per pass. Worker bring-ups
/// run as child tasks of ``run()``; callers wait for outcomes with continuations resumed by the event.
public actor WorkerHub {
    public typealias Instant = HubClock.Instant

    /// Limits and timings the hub needs from ``LabConfig``.
    public struct Settings: Sendable {
        public var maxWorkers: Int
        public var readinessTimeout: Duration
        public var slowStartInterval: Duration
        public var policy: ReaperPolicy
        /// `LAB_IDLE_WARNING_SECS` when it was larger than the timeout (and clamped in ``policy``).
        public var clampedWarning: Double?

        public init(_ config: LabConfig) {
            maxWorkers = config.maxWorkers
            readinessTimeout = .seconds(double: config.containerWSTimeout)
            slowStartInterval = .seconds(double: config.containerStartupDelay)
            policy = ReaperPolicy(
                idleTimeout: .seconds(double: config.idleTimeout), warningLead: .seconds(double: config.idleWarning),
                maxTurn: .seconds(double: config.maxTurn))
            clampedWarning = config.idleWarning > config.idleTimeout ? config.idleWarning : nil
        }
    }

    /// One bring-up: its number (so a late outcome never lands on a newer entry), the progress shared by
    /// every waiting client, and the handle once the backend has started the worker.
    struct StartAttempt {
        var number: Int
        var fanout: ProgressFanout
        var handle: WorkerHandle?
    }

    enum Phase {
        case starting(StartAttempt)
        case running(WorkerHandle)
        case stopping(WorkerHandle)
    }

    struct Entry {
        var phase: Phase
        var connections: [Int: any HubConnection] = [:]
        var lastActivity: Instant
        var warning: (sentAt: Instant, deadline: Instant)?
        /// Callers waiting for the start to end (with its handle or error).
        var startWaiters: [CheckedContinuation<WorkerHandle, any Error>] = []
        /// Callers waiting for the stop to end.
        var stopWaiters: [CheckedContinuation<Void, Never>] = []

        var handle: WorkerHandle? {
            switch phase {
            case .starting(let attempt): attempt.handle
            case .running(let handle), .stopping(let handle): handle
            }
        }
    }

    let backend: any WorkerBackend
    let settings: Settings
    let metrics: LabMetrics
    let logger: Logger
    /// The reaper's and the hub's time (``ReaperService`` sleeps on it too).
    nonisolated let clock: HubClock
    let readiness: WorkerReadiness
    private var entries: [UserID: Entry] = [:]
    private var attempts = 0
    /// Deaths by worker id, kept briefly so a proxy that lost its upstream can say why.
    private var recentDeaths: [String: WorkerDeath] = [:]
    private var deathOrder: [String] = []
    /// Proxies waiting for the death of a worker id (``deathReason(of:wait:)``), by waiter number.
    private var deathWaiters: [String: [Int: CheckedContinuation<WorkerDeath?, Never>]] = [:]
    private var nextDeathWaiter = 0
    private var accepting = true
    private let messages: AsyncStream<HubInbox.Message>
    /// Handed to connections with a warning; bring-ups go through it too, into ``run()``.
    nonisolated let inbox: HubInbox
    /// Wakes ``ReaperService`` before its deadline when one may have moved earlier: a worker became ready
    /// or was adopted, a connection came or went, a busy period or a warning ended. One consumer.
    nonisolated let reaperWakes: AsyncStream<Void>

    public init(
        backend: any WorkerBackend, settings: Settings, metrics: LabMetrics, logger: Logger, clock: HubClock = .continuous,
        readiness: WorkerReadiness = .probe
    ) {
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.readiness = readiness
        let (stream, continuation) = AsyncStream<HubInbox.Message>.makeStream()
        let (wakes, reaper) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.messages = stream
        self.reaperWakes = wakes
        self.inbox = HubInbox(continuation: continuation, reaper: reaper)
        if let requested = settings.clampedWarning {
            logger.warning(
                "LAB_IDLE_WARNING_SECS is larger than LAB_IDLE_TIMEOUT_SECS; the warning lead is clamped to the timeout",
                metadata: ["LAB_IDLE_WARNING_SECS": "\(requested)", "LAB_IDLE_TIMEOUT_SECS": "\(settings.policy.idleTimeout.secondsDouble)"])
        }
    }

    /// A deadline may have moved earlier: the reaper recomputes its sleep.
    private func rearmReaper() { inbox.reaper.yield() }

    // ---- the hub's own work ------------------------------------------------------------------

    /// Runs bring-ups (each a child task, shared by every caller of ``ensure(_:attaching:progress:)``
    /// for that user) and voided warnings, in order, until ``shutdown()``. Bring-ups still running then
    /// are cancelled: their clients are gone and the backend has shut down.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await message in messages {
                switch message {
                case .bringUp(let user, let attempt, let fanout):
                    group.addTask { await self.bringUp(user, attempt: attempt, fanout: fanout) }
                case .warningVoided(let user, let at):
                    voidWarning(user, at: at)
                }
            }
            group.cancelAll()
        }
    }

    // ---- start-up ------------------------------------------------------------------------

    /// Adopts the workers the backend already runs (controller restart). Returns how many.
    @discardableResult
    public func adoptExisting() async throws -> Int {
        let handles = try await backend.adoptExisting()
        let now = clock.now
        for h in handles where entries[h.user] == nil {
            entries[h.user] = Entry(phase: .running(h), lastActivity: now)
            logger.info(
                "adopted worker",
                metadata: ["user": "\(h.user)", "id": "\(h.id)", "address": "\(h.address)", "stale": "\(h.specHash != backend.currentSpecHash)"])
        }
        updateGauges()
        rearmReaper()
        return handles.count
    }

    // ---- ensure / attach -------------------------------------------------------------------

    /// Makes sure `user` has a ready worker and registers `connection` on it (atomically with the
    /// check, so the reaper never sees a worker in use without its connection). Concurrent callers
    /// for one user share one start; all of them receive its progress.
    public func ensure(
        _ user: UserID, attaching connection: (any HubConnection)? = nil, progress: (@Sendable (LabProgress) -> Void)? = nil
    ) async throws -> WorkerHandle {
        while true {
            guard accepting else { throw WorkerStartError("the controller is shutting down") }
            if let entry = entries[user] {
                switch entry.phase {
                case .running(let handle):
                    if handle.specHash != backend.currentSpecHash, entry.connections.isEmpty {
                        logger.info("replacing idle worker with outdated settings", metadata: ["user": "\(user)", "id": "\(handle.id)"])
                        await stop(user, reason: .specChanged)
                        continue
                    }
                    attach(connection, to: user)
                    return handle
                case .starting(let attempt):
                    let token = progress.map { attempt.fanout.subscribe($0) }
                    defer { if let token { attempt.fanout.unsubscribe(token) } }
                    let handle = try await startEnded(user)
                    guard case .running(let now) = entries[user]?.phase, now.id == handle.id else { continue }
                    attach(connection, to: user)
                    return handle
                case .stopping:
                    await stopEnded(user)
                    continue
                }
            }
            if settings.maxWorkers > 0, entries.count >= settings.maxWorkers {
                throw WorkerStartError("the lab is at its limit of \(settings.maxWorkers) workers; try again later")
            }
            attempts += 1
            let fanout = ProgressFanout()
            entries[user] = Entry(phase: .starting(StartAttempt(number: attempts, fanout: fanout)), lastActivity: clock.now)
            inbox.continuation.yield(.bringUp(user, attempt: attempts, fanout))
            updateGauges()
        }
    }

    /// Waits for the start in progress for `user` to end (called while it is `.starting`).
    private func startEnded(_ user: UserID) async throws -> WorkerHandle {
        try await withCheckedThrowingContinuation { entries[user]?.startWaiters.append($0) }
    }

    /// Waits for the stop in progress for `user` to end (called while it is `.stopping`).
    private func stopEnded(_ user: UserID) async {
        await withCheckedContinuation { entries[user]?.stopWaiters.append($0) }
    }

    /// Body of the single start of a user (a child task of ``run()``): create, start, probe.
    private func bringUp(_ user: UserID, attempt: Int, fanout: ProgressFanout) async {
        let t0 = clock.now
        var handle: WorkerHandle?
        let result: Result<WorkerHandle, any Error>
        do {
            let started = try await backend.start(user: user) { step in fanout.emit(.step(step)) }
            handle = started
            if case .starting(var a) = entries[user]?.phase, a.number == attempt {
                a.handle = started
                entries[user]?.phase = .starting(a)
            }
            fanout.emit(.waiting)
            try await readiness.wait(
                started.address, settings.readinessTimeout, settings.slowStartInterval, { await self.isAlive(started.id) },
                { elapsed in
                    var p = LabProgress.waiting
                    p.elapsedSeconds = elapsed.secondsDouble
                    fanout.emit(p)
                }, logger)
            let took = clock.now - t0
            metrics.spawnSeconds.record(took)
            logger.info("worker ready", metadata: ["user": "\(user)", "id": "\(started.id)", "address": "\(started.address)", "took": "\(took)"])
            result = .success(started)
        } catch {
            logger.error("worker start failed", metadata: ["user": "\(user)", "error": "\(error)"])
            if let handle { await backend.stop(handle, reason: .failedStart) }
            metrics.stopped(.failedStart)
            result = .failure(error)
        }
        guard case .starting(let a) = entries[user]?.phase, a.number == attempt, var entry = entries[user] else { return }
        let waiters = entry.startWaiters
        switch result {
        case .success(let started):
            entry.phase = .running(started)
            entry.lastActivity = clock.now
            entry.startWaiters = []
            entries[user] = entry
            rearmReaper()
        case .failure:
            entries[user] = nil
        }
        updateGauges()
        for w in waiters { w.resume(with: result) }
    }

    private func attach(_ connection: (any HubConnection)?, to user: UserID) {
        entries[user]?.lastActivity = clock.now
        guard let connection else { return }
        entries[user]?.connections[connection.id] = connection
        connection.attached(inbox)
        if entries[user]?.warning != nil { connection.setWarning(inbox) }
        metrics.connections.increment()
        rearmReaper()  // with a connection, the warning is due before the reap
    }

    /// Unregisters a connection; the time of its last user frame (or now, if it was busy) counts as the
    /// worker's activity.
    public func detach(_ connection: any HubConnection) {
        guard var entry = entries[connection.user], entry.connections.removeValue(forKey: connection.id) != nil else { return }
        metrics.connections.decrement()
        let a = connection.activity
        entry.lastActivity = max(entry.lastActivity, a.busySince == nil ? a.lastActivity : clock.now)
        entries[connection.user] = entry
        rearmReaper()  // without connections (or its busy period) the reap may be due sooner
    }

    // ---- stop / death ------------------------------------------------------------------------

    /// Stops the user's worker (the workspace stays). Open connections get `lab.stopped` and a close.
    public func stop(_ user: UserID, reason: StopReason) async {
        guard let entry = entries[user] else { return }
        logger.debug("stop requested", metadata: ["user": "\(user)", "reason": "\(reason.rawValue)"])
        switch entry.phase {
        case .starting:
            _ = try? await startEnded(user)
            await stop(user, reason: reason)
        case .stopping:
            await stopEnded(user)
        case .running(let handle):
            let (text, closeReason) = Self.stopWording(reason)
            await stopRunning(
                user, handle, reason: reason, closing: Array(entry.connections.values),
                event: { LabEvents.status("lab.stopped", text, sessionID: $0.sessionID, metadata: ["reason": .string(reason.rawValue)]) },
                code: .goingAway, closeReason: closeReason)
        }
    }

    /// Marks the worker as stopping, stops it while its clients are told and closed, and forgets the entry
    /// as soon as the backend is done (before the clients, which are bounded by a timeout) — then wakes
    /// whoever waited for the stop.
    private func stopRunning(
        _ user: UserID, _ handle: WorkerHandle, reason: StopReason, closing connections: [any HubConnection],
        event: @escaping @Sendable (any HubConnection) -> RelayEvent, code: WebSocketErrorCode, closeReason: String
    ) async {
        entries[user]?.phase = .stopping(handle)
        updateGauges()
        let backend = self.backend
        await withDiscardingTaskGroup { group in
            group.addTask {
                await backend.stop(handle, reason: reason)
                await self.stopFinished(user, handle: handle, reason: reason)
            }
            await terminateAll(connections, event: event, code: code, reason: closeReason)
        }
    }

    private func stopFinished(_ user: UserID, handle: WorkerHandle, reason: StopReason) {
        var waiters: [CheckedContinuation<Void, Never>] = []
        if let entry = entries[user], case .stopping(let h) = entry.phase, h.id == handle.id {
            waiters = entry.stopWaiters
            entries[user] = nil
        }
        metrics.stopped(reason)
        updateGauges()
        logger.info("worker stopped", metadata: ["user": "\(user)", "id": "\(handle.id)", "reason": "\(reason.rawValue)"])
        for w in waiters { w.resume() }
    }

    static func stopWording(_ reason: StopReason) -> (text: String, close: String) {
        switch reason {
        case .idle: ("Your lab worker was stopped after a period without activity. Your files are kept; reconnect to start it again.", "idle timeout")
        case .stuck: ("Your lab worker was stopped because a turn ran past the time limit. Your files are kept.", "turn time limit")
        case .admin: ("Your lab worker was stopped by an administrator. Your files are kept.", "stopped by administrator")
        case .specChanged: ("Your lab worker is being replaced with updated settings. Reconnect to continue.", "worker replaced")
        case .shutdown: ("The lab controller is shutting down.", "controller shutting down")
        case .dead, .failedStart: ("Your lab worker stopped.", "worker stopped")
        case .unresponsive:
            ("Your lab worker stopped answering and is being replaced. Your files are kept; reconnect to continue.", "worker not answering")
        }
    }

    public func incident(_ incident: WorkerIncident) async {
        switch incident {
        case .died(let death): await workerDied(death)
        case .memoryKill(let user, let id, let limit): memoryKill(user, id: id, limitBytes: limit)
        case .reconnected: await reconcile()
        }
    }

    /// After the backend was blind (engine restart): a worker the hub runs that no longer exists died
    /// meanwhile, so it is forgotten and its clients are told, like any death. Only workers that were
    /// running before the listing are judged (one that starts meanwhile is not in it yet).
    func reconcile() async {
        let before = entries.compactMap { user, entry -> (UserID, WorkerHandle)? in
            if case .running(let h) = entry.phase { return (user, h) }
            return nil
        }
        guard !before.isEmpty else { return }
        let alive: Set<String>
        do {
            alive = try await backend.aliveWorkerIDs()
        } catch {
            logger.warning("cannot list workers to reconcile", metadata: ["error": "\(error)"])
            return
        }
        for (user, handle) in before where !alive.contains(handle.id) {
            await workerDied(WorkerDeath(user: user, id: handle.id, reason: "its container stopped while the Docker engine was unreachable"))
        }
    }

    /// The kernel killed a process of this worker for memory: its clients are told at once (the agent's
    /// own report, if any, says only that a process died), with the limit so they know what to change.
    func memoryKill(_ user: UserID, id: String, limitBytes: Int64?) {
        guard let entry = entries[user], case .running(let handle) = entry.phase, handle.id == id else { return }
        metrics.memoryKill()
        let limit = limitBytes.map { " (limit \($0 / (1024 * 1024)) MiB)" } ?? ""
        logger.warning("out of memory in a worker", metadata: ["user": "\(user)", "id": "\(id)", "limit_bytes": "\(limitBytes.map(String.init) ?? "none")"])
        for c in entry.connections.values {
            c.send(
                LabEvents.error(
                    "A process in your lab worker ran out of memory\(limit) and the kernel killed it. Your files are kept.",
                    sessionID: c.sessionID,
                    metadata: ["lab": ["reason": .string("oom"), "memory_limit_bytes": limitBytes.map { .int($0) } ?? .null]]))
        }
    }

    /// A worker stopped on its own: clients get an `error` saying why, the worker is cleaned up, and the
    /// next connect starts a new one.
    public func workerDied(_ death: WorkerDeath) async {
        recentDeaths[death.id] = death
        deathOrder.append(death.id)
        if deathOrder.count > 256 { recentDeaths[deathOrder.removeFirst()] = nil }
        for w in (deathWaiters.removeValue(forKey: death.id) ?? [:]).values { w.resume(returning: death) }
        guard let entry = entries[death.user], entry.handle?.id == death.id else { return }
        if case .stopping = entry.phase { return }  // we stopped it ourselves
        metrics.workerDied(oom: death.oomKilled)
        logger.warning("worker died", metadata: ["user": "\(death.user)", "id": "\(death.id)", "reason": "\(death.reason)"])
        guard case .running(let handle) = entry.phase else { return }  // a starting worker: its probe fails and cleans up
        await stopRunning(
            death.user, handle, reason: .dead, closing: Array(entry.connections.values), event: { Self.deathEvent(death, sessionID: $0.sessionID) },
            code: .unexpectedServerError, closeReason: "worker stopped")
    }

    /// A proxy found the worker hung (a missed pong, upgrades that time out): its clients get an `error`
    /// saying so and a close, the worker is stopped (SIGKILL after the grace), and the next connect starts a
    /// new one. Without this a hung worker stays `running`, and reconnects that refresh its activity keep
    /// the user locked out of it.
    public func workerUnresponsive(_ id: String, detail: String) async {
        guard let user = entries.first(where: { $0.value.handle?.id == id })?.key, let entry = entries[user],
            case .running(let handle) = entry.phase
        else { return }
        logger.warning("worker not answering; replacing it", metadata: ["user": "\(user)", "id": "\(id)", "detail": "\(detail)"])
        let (text, closeReason) = Self.stopWording(.unresponsive)
        await stopRunning(
            user, handle, reason: .unresponsive, closing: Array(entry.connections.values),
            event: { LabEvents.error(text, sessionID: $0.sessionID, metadata: ["lab": ["reason": .string("unresponsive"), "detail": .string(detail)]]) },
            code: .unexpectedServerError, closeReason: closeReason)
    }

    static func deathEvent(_ death: WorkerDeath, sessionID: String) -> RelayEvent {
        LabEvents.error(
            "Your lab worker stopped unexpectedly: \(death.reason). Your files are kept; reconnect to start a new worker.",
            sessionID: sessionID,
            metadata: ["lab": ["reason": .string(death.oomKilled ? "oom" : "exited"), "exit_code": death.exitCode.map { .int(Int64($0)) } ?? .null]])
    }

    func isAlive(_ id: String) -> Bool { recentDeaths[id] == nil }

    /// Why worker `id` died, waiting up to `wait` (on the hub's clock) for the backend to report it (the
    /// proxy often notices a lost connection a moment before the engine's event arrives).
    public func deathReason(of id: String, wait: Duration) async -> WorkerDeath? {
        if let d = recentDeaths[id] { return d }
        nextDeathWaiter += 1
        let number = nextDeathWaiter
        let deadline = clock.now + wait
        let clock = self.clock
        return await withTaskGroup(of: Void.self) { group in
            // The timer answers "unknown" at the deadline; cancelled (and then a no-op) if the death came first.
            group.addTask {
                try? await clock.sleep(until: deadline)
                await self.deathWaitEnded(id, number)
            }
            let death = await withCheckedContinuation { deathWaiters[id, default: [:]][number] = $0 }
            group.cancelAll()
            return death
        }
    }

    private func deathWaitEnded(_ id: String, _ number: Int) {
        guard let w = deathWaiters[id]?.removeValue(forKey: number) else { return }
        if deathWaiters[id]?.isEmpty == true { deathWaiters[id] = nil }
        w.resume(returning: nil)
    }

    // ---- reaper ------------------------------------------------------------------------------

    /// One reaper pass: warnings, cancellations, reaps (in deadline order) and replacement of outdated
    /// idle workers. Returns the next deadline of each running worker (see docs/protocol.md,
    /// `lab.idle_warning`), for ``ReaperService`` to sleep until.
    @discardableResult
    public func reapPass() async -> [Instant] {
        await backend.refreshSpec()
        let now = clock.now
        var toStop: [(user: UserID, reason: StopReason, due: Instant)] = []
        for (user, entry) in entries {
            guard case .running(let handle) = entry.phase else { continue }
            if handle.specHash != backend.currentSpecHash, entry.connections.isEmpty {
                toStop.append((user, .specChanged, now))
                continue
            }
            let facts = facts(entry)
            switch settings.policy.decide(facts, now: now) {
            case .keep:
                break
            case .cancelWarning:
                cancelWarning(user)
            case .warn(let deadline):
                entries[user]?.warning = (now, deadline)
                let seconds = Int((deadline - now).secondsDouble.rounded(.up))
                for c in entry.connections.values {
                    c.setWarning(inbox)
                    c.send(
                        LabEvents.status(
                            "lab.idle_warning",
                            "Your lab worker will be stopped in \(seconds) s for inactivity. Send anything to keep it running.",
                            sessionID: c.sessionID, metadata: ["seconds_left": .int(Int64(seconds))]))
                }
                logger.info("idle warning sent", metadata: ["user": "\(user)", "seconds_left": "\(seconds)"])
            case .reap(let reason):
                toStop.append((user, reason, settings.policy.nextDeadline(facts, now: now)))
            }
        }
        for s in toStop.sorted(by: { $0.due < $1.due }) { await stop(s.user, reason: s.reason) }
        return nextDeadlines()
    }

    /// What the policy needs of one entry, its connections' activity included.
    private func facts(_ entry: Entry) -> ReaperPolicy.Facts {
        var last = entry.lastActivity
        var busy: Instant?
        for c in entry.connections.values {
            let a = c.activity
            last = max(last, a.lastActivity)
            if let b = a.busySince { busy = min(busy ?? b, b) }
        }
        return ReaperPolicy.Facts(lastActivity: last, busySince: busy, connections: entry.connections.count, warning: entry.warning)
    }

    /// When each running worker next needs the reaper, if nothing new happens.
    func nextDeadlines() -> [Instant] {
        let now = clock.now
        return entries.values.compactMap { entry in
            guard case .running = entry.phase else { return nil }
            return settings.policy.nextDeadline(facts(entry), now: now)
        }
    }

    /// A user frame at `at` arrived while a warning was out. A report that was overtaken by a newer
    /// warning (sent after the frame) is stale and ignored.
    func voidWarning(_ user: UserID, at: Instant) {
        guard let warning = entries[user]?.warning, at >= warning.sentAt else { return }
        cancelWarning(user)
    }

    /// The warning is void: every client hears so, after the warning itself (both are sent from this
    /// actor, and ``HubConnection/send(_:)`` keeps the order).
    public func cancelWarning(_ user: UserID) {
        guard let entry = entries[user], entry.warning != nil else { return }
        entries[user]?.warning = nil
        rearmReaper()  // the warning's deadline is gone; a new one follows from the activity
        for c in entry.connections.values {
            c.setWarning(nil)
            c.send(LabEvents.status("lab.idle_warning_cancelled", "Activity seen; your lab worker keeps running.", sessionID: c.sessionID))
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

    /// The user's worker if it is running (for requests to the worker itself, such as its session list).
    public func runningHandle(_ user: UserID) -> WorkerHandle? {
        guard case .running(let handle)? = entries[user]?.phase else { return nil }
        return handle
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
            let handle = e.handle
            return WorkerInfo(
                user: user, state: state, id: handle?.id, address: handle.map { "\($0.address)" }, connections: e.connections.count,
                busy: busy, idleSeconds: idle, lastActivity: wallNow - (now - last).secondsDouble, createdAt: handle?.createdAt,
                outdated: handle.map { $0.specHash != backend.currentSpecHash } ?? false, adopted: handle?.adopted ?? false)
        }.sorted { $0.user < $1.user }
    }

    /// Graceful shutdown: refuse new work, close every client socket with a reason, then let the backend
    /// finish (subprocesses stop; containers keep running for the next start to adopt), and end ``run()``.
    public func shutdown() async {
        accepting = false
        let all = entries.values.flatMap { $0.connections.values }
        let (text, reason) = Self.stopWording(.shutdown)
        await terminateAll(all, event: { LabEvents.status("lab.shutdown", text, sessionID: $0.sessionID) }, code: .goingAway, reason: reason)
        await backend.shutdown()
        inbox.continuation.finish()
        inbox.reaper.finish()  // the reaper has nothing left to do
        logger.info("hub shut down", metadata: ["connections_closed": "\(all.count)"])
    }

    private func terminateAll(
        _ connections: [any HubConnection], event: @escaping @Sendable (any HubConnection) -> RelayEvent, code: WebSocketErrorCode,
        reason: String
    ) async {
        guard !connections.isEmpty else { return }
        _ = try? await withTimeout(.seconds(5), clock: clock) {
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
