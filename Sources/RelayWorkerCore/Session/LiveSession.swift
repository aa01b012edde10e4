import Logging
import RelayProtocol
import Synchronization

/// One session, owned by the worker and addressed by its `session_id`: sockets only attach to it
/// (docs/protocol.md §7). It runs its agent until the agent ends, a client sends `end_session`, or it
/// has had no client for the detach grace while idle.
final class LiveSession: Sendable {
    let id: String
    let tool: String
    let folder: String
    let model: String?
    let createdAt: Double
    let sink: EventSink
    /// nil for a session recovered from disk (it has ended).
    let runtime: (any AgentRuntime)?
    let logger: Logger

    private struct State {
        var clients = 0
        /// When the last client left (nil while one is attached, and before the first one: the socket that
        /// started the session attaches right after).
        var detachedAt: ContinuousClock.Instant?
        var endRequested = false
    }
    private let state = Mutex(State())
    private let failed = Atomic<Bool>(false)

    /// Client commands, handled one at a time in arrival order whatever client sent them.
    private let commands: AsyncStream<ClientCommand>
    private let commandInput: AsyncStream<ClientCommand>.Continuation
    /// Messages waiting for the agent, per session (a flood is refused, not buffered).
    static let maxQueuedCommands = 1024

    init(
        id: String, tool: String, folder: String, model: String?, createdAt: Double, sink: EventSink, runtime: (any AgentRuntime)?,
        logger: Logger
    ) {
        self.id = id
        self.tool = tool
        self.folder = folder
        self.model = model
        self.createdAt = createdAt
        self.sink = sink
        self.runtime = runtime
        self.logger = logger
        (commands, commandInput) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(Self.maxQueuedCommands))
        if runtime == nil { commandInput.finish() }
    }

    var log: SessionLog { sink.log }
    var clients: Int { state.withLock { $0.clients } }

    var activityState: SessionActivity.State { log.isEnded ? .ended : sink.tracked.withLock { $0.activity.state } }

    // ---- clients -----------------------------------------------------------------------------

    func clientAttached() {
        state.withLock { s in
            s.clients += 1
            s.detachedAt = nil
        }
        sink.changed.notify()
    }

    func clientDetached() {
        state.withLock { s in
            s.clients -= 1
            if s.clients == 0 { s.detachedAt = .now }
        }
        sink.changed.notify()
    }

    /// `end_session` from any client: stop the agent now.
    func requestEnd() {
        state.withLock { $0.endRequested = true }
        sink.changed.notify()
    }

    /// Queues a client command for the agent. False when the queue is full or the session is over.
    func submit(_ command: ClientCommand) -> Bool {
        if case .enqueued = commandInput.yield(command) { return true }
        return false
    }

    // ---- the session's life (a child task of ``SessionDirectory/run()``) -------------------------

    /// Runs the agent until the session ends, then records `session_end`.
    func drive(grace: Duration?, maxTurn: Duration) async {
        guard let runtime else { return }
        let log = logger
        let exit: Int32?? = await withTaskGroup(of: Int32??.self) { group in
            group.addTask {
                do {
                    return .some(try await runtime.run())
                } catch is CancellationError {
                    return nil
                } catch {
                    log.warning("runtime failed", metadata: ["error": .client(String(describing: error))])
                    self.failed.store(true, ordering: .relaxed)
                    let text = String(describing: error)
                    await self.sink.error(text.isEmpty ? "Failed to start \(self.tool) runtime" : text)
                    return nil
                }
            }
            group.addTask {
                await self.handleCommands(runtime)
                return nil
            }
            group.addTask {
                await self.lifetime(grace: grace, maxTurn: maxTurn)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        commandInput.finish()
        // A runtime that failed has said why in an `error`; as in ai-relay no `session_end` follows.
        if let exit {
            var end = RelayEvent("session_end")
            end.exitCode = exit.map(Int.init)
            sink.record(end)
        } else if failed.load(ordering: .relaxed) {
            sink.log.end()
        } else {
            var end = RelayEvent("session_end")
            end.metadata = ["reason": state.withLock { $0.endRequested } ? "end_session" : "detached"]
            sink.record(end)
        }
        log.info("session end", metadata: ["exit_code": "\(exit.map { $0.map(String.init) ?? "none" } ?? "stopped")"])
    }

    private func handleCommands(_ runtime: any AgentRuntime) async {
        for await command in commands {
            if command.ack != nil, case .prompt = command.action { sink.tracked.withLock { $0.activity.turnStarted(now: .now) } }
            if case .permissionAnswer(let answer) = command.action { sink.tracked.withLock { $0.activity.answered(answer.id) } }
            await runtime.handle(command)
            if let ack = command.ack { sink.record(ack) }
        }
        // The stream ends only when the session does: wait to be cancelled with the others.
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    /// Returns when the session should end: `end_session`, or no client for `grace` while idle (a busy
    /// session is kept, for at most `maxTurn` of its turn). `grace` nil = never by absence.
    private func lifetime(grace: Duration?, maxTurn: Duration) async {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (end, wake): (Bool, ContinuousClock.Instant?) = state.withLock { s in
                if s.endRequested { return (true, nil) }
                guard let grace, let detachedAt = s.detachedAt else { return (false, nil) }
                let busySince: ContinuousClock.Instant? = sink.tracked.withLock { t in
                    t.activity.isBusy ? (t.activity.busySince ?? detachedAt) : nil
                }
                if grace == .zero { return (true, nil) }  // ai-relay: the socket is the session
                if let busySince {
                    let limit = busySince + maxTurn
                    return now >= limit ? (true, nil) : (false, limit)
                }
                let due = detachedAt + grace
                return now >= due ? (true, nil) : (false, due)
            }
            if end { return }
            if let wake {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await Task.sleep(until: wake) }
                    group.addTask { await self.sink.changed.wait() }
                    await group.next()
                    group.cancelAll()
                }
            } else {
                await sink.changed.wait()
            }
        }
    }

    // ---- listing -------------------------------------------------------------------------------

    var listing: JSON {
        let (last, clients) = (log.lastSeq, self.clients)
        let lastEventAt = sink.tracked.withLock { $0.lastEventAt }
        var o = JSONObject()
        o["session_id"] = .string(id)
        o["tool"] = .string(tool)
        o["folder"] = .string(folder)
        o["model"] = model.map(JSON.string) ?? .null
        o["state"] = .string(activityState.rawValue)
        o["last_seq"] = .int(Int64(last))
        o["clients"] = .int(Int64(clients))
        o["created_at"] = .double(createdAt)
        o["last_event_at"] = .double(lastEventAt)
        return .object(o)
    }
}
