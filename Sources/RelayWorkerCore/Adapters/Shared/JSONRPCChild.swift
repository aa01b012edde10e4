import ChildProcess
import RelayProtocol

/// A CLI spoken to in JSON-RPC lines on its stdio (codex app-server, Gemini ACP), one process at a
/// time: writes requests, notifications and answers in the child's dialect, reads its stdout one line
/// at a time, matches answers to our calls (each bounded by a timeout, all failed when stdout ends),
/// hands every other line to the runtime in order, and says when the child is live (started and
/// past the runtime's start sequence).
///
/// `run` hosts the runtime's side work (`background`) in a task group, so nothing outlives the runtime.
actor JSONRPCChild {
    /// The words of the messages the child's failures produce.
    struct Wording: Sendable {
        /// The tool's name in "Command not found: …" and in the line-cap error ("codex", "gemini").
        let tool: String
        /// A call or notification when no child runs or the write failed.
        let notRunning: String
        /// Pending calls when the child's stdout ended.
        let exited: String
        /// "Timed out waiting for <waitingFor> <method>".
        let waitingFor: String
    }

    /// Where the child is, for the runtime's waiters.
    private enum Phase {
        /// Being spawned or in the start sequence.
        case starting
        case live
        /// Exited or failed to start; `restart()` makes it `starting` again.
        case down
        /// The session is over.
        case stopped
    }

    let dialect: JSONRPCDialect
    let wording: Wording
    private let calls = RPCCalls()
    private var nextID: Int64 = 1
    private var write: (@Sendable ([UInt8]) async throws -> Void)?
    private var phase = Phase.starting
    /// Why the last child failed to start; nil when it ran (or none has ended yet). Kept when the
    /// session stops, for the prompts that were waiting.
    private(set) var startFailure: String?
    private var liveWaiters: [CheckedContinuation<Bool, Never>] = []
    private let work: AsyncStream<@Sendable () async -> Void>
    private let submit: AsyncStream<@Sendable () async -> Void>.Continuation

    init(_ dialect: JSONRPCDialect, wording: Wording) {
        self.dialect = dialect
        self.wording = wording
        (work, submit) = AsyncStream.makeStream()
    }

    // MARK: lifetime

    /// Runs `body` (the runtime's whole life) with a task group for `background` work; when `body`
    /// ends, work still running is cancelled and awaited. Call once.
    nonisolated func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await withDiscardingTaskGroup { side in
                    for await job in self.work { side.addTask { await job() } }
                }
                return nil
            }
            group.addTask { try await body() }
            defer { group.cancelAll() }
            // The work loop ends only when cancelled, so the first value is the body's.
            while let next = try await group.next() {
                if let value = next { return value }
            }
            throw CancellationError()
        }
    }

    /// Work that must not hold up the caller (a call made while reading, a prompt's answer), run in
    /// `run`'s task group.
    nonisolated func background(_ job: @escaping @Sendable () async -> Void) {
        submit.yield(job)
    }

    /// Spawns `spec` and serves it until its stdout ends: stdout lines go to `receive` (answers to
    /// our calls excepted), stderr lines become `stderr` events, and `start` (the runtime's start
    /// sequence, which needs the reader) runs first; the child is live once `start` returned.
    /// A spawn failure is thrown as an `RPCError` ("Command not found: …" when missing).
    nonisolated func serve(
        _ spec: ChildSpec, sink: EventSink, receive: @escaping @Sendable (JSONRPCIncoming) async -> Void,
        start: () async throws -> Void
    ) async throws -> ExitStatus {
        calls.reopen()
        do {
            let (_, status) = try await ChildProcess.run(spec) { child in
                await self.attach { try await child.write($0) }
                try await ChildLines.drive(child, sink: sink, readStdout: { await self.read(child, sink: sink, receive) }) {
                    try await start()
                    await self.becomeLive()
                }
            }
            await detach(failure: nil)
            return status
        } catch let error as SpawnError {
            let text =
                error.isNotFound ? "Command not found: \(wording.tool). Is it installed and on PATH?" : error.description
            await detach(failure: text)
            throw RPCError(text)
        } catch {
            await detach(failure: "\(error)")
            throw error
        }
    }

    /// Connects the writer of a new child (tests: a fake one).
    func attach(_ write: @escaping @Sendable ([UInt8]) async throws -> Void) {
        self.write = write
        if case .down = phase { phase = .starting }
    }

    /// The child is gone (`failure`: why it did not start); waiters get false.
    func detach(failure: String?) {
        write = nil
        startFailure = failure
        if case .stopped = phase { return }
        phase = .down
        resumeWaiters(false)
    }

    /// The start sequence is done; waiters get true.
    func becomeLive() {
        guard case .starting = phase else { return }
        phase = .live
        resumeWaiters(true)
    }

    // MARK: readiness

    /// Waits until the child is live; false when it went down or the session is over.
    func awaitLive() async -> Bool {
        switch phase {
        case .live: return true
        case .down, .stopped: return false
        case .starting: return await withCheckedContinuation { liveWaiters.append($0) }
        }
    }

    var isLive: Bool {
        if case .live = phase, write != nil { return true }
        return false
    }

    /// Marks a down child as starting again (the caller then spawns one); false when it is not down.
    func restart() -> Bool {
        guard case .down = phase else { return false }
        phase = .starting
        startFailure = nil
        return true
    }

    /// The session is over: waiters get false, and no child is live any more.
    func stop() {
        phase = .stopped
        resumeWaiters(false)
    }

    private func resumeWaiters(_ live: Bool) {
        for waiter in liveWaiters { waiter.resume(returning: live) }
        liveWaiters.removeAll()
    }

    // MARK: writing

    /// A request that was written and is waiting for its answer.
    struct Call: Sendable {
        let key: String
        let method: String
    }

    /// Sends a request and waits for its answer (the whole response message; an `error` answer is
    /// not thrown), at most `timeout`. Throws when the child is gone, exits, or the time is up.
    func call(_ method: String, _ params: JSON, timeout: Duration) async throws -> JSON {
        try await wait(send(method, params), timeout: timeout)
    }

    /// Writes a request; `wait` then takes its answer.
    func send(_ method: String, _ params: JSON) async throws -> Call {
        let id = nextID
        nextID += 1
        let key = String(id)
        // First: after an exit this throws the exit's reason, not "not running".
        try calls.reserve(key)
        do {
            guard let write else { throw RPCError(wording.notRunning) }
            try await write(dialect.request(id: id, method: method, params: params).encoded() + [0x0A])
        } catch {
            calls.discard(key)
            throw RPCError(wording.notRunning)
        }
        return Call(key: key, method: method)
    }

    /// The answer to a request `send` wrote, at most `timeout`.
    nonisolated func wait(_ call: Call, timeout: Duration) async throws -> JSON {
        try await calls.wait(
            call.key, timeout: timeout, timeoutMessage: "Timed out waiting for \(wording.waitingFor) \(call.method)")
    }

    func notify(_ method: String, _ params: JSON? = nil) async throws {
        try await send(line: dialect.notification(method: method, params: params))
    }

    /// Answers a request the child sent.
    func respond(to id: JSON, _ result: JSON) async throws {
        try await send(line: dialect.response(id: id, result: result))
    }

    /// Answers a request the child sent with a JSON-RPC error.
    func respond(to id: JSON, errorCode: Int64, message: String) async throws {
        try await send(line: dialect.errorResponse(id: id, code: errorCode, message: message))
    }

    private func send(line: JSON) async throws {
        guard let write else { throw RPCError(wording.notRunning) }
        try await write(line.encoded() + [0x0A])
    }

    // MARK: reading

    private nonisolated func read(
        _ child: RunningChild, sink: EventSink, _ receive: @Sendable (JSONRPCIncoming) async -> Void
    ) async {
        await ChildLines.forEachLine(of: child) { limit in
            await sink.error("Relay error: a line from \(self.wording.tool) exceeded \(limit) bytes and was skipped")
        } _: { line in
            if let incoming = self.route(line) { await receive(incoming) }
        }
        stdoutEnded()
    }

    /// One stdout line: an answer is delivered to its call (or dropped: an unknown or expired id), a
    /// blank line is skipped, anything else is returned for the runtime.
    nonisolated func route(_ line: [UInt8]) -> JSONRPCIncoming? {
        if line.isEmpty { return nil }
        guard let message = ChildLines.object(line) else { return .text(line) }
        switch dialect.read(message, line: line) {
        case .answer(let key):
            if let key { calls.resolve(key, message) }
            return nil
        case .message(let incoming):
            return incoming
        }
    }

    /// The child's stdout ended: every pending call fails, new ones are refused until the next child.
    nonisolated func stdoutEnded() {
        calls.close(wording.exited)
    }
}
