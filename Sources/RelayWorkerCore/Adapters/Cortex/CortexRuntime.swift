import AsyncHTTPClient
import Deadline
import Logging
import NIOCore
import RelayProtocol

/// One Cortex conversation: each prompt POSTs the whole history to the mode's endpoint
/// and streams the SSE answer as events; the answer is added to the history and the last 40
/// messages go to the client as `status` `cortex_history_snapshot` (to send back as
/// `cortex_history` after a reconnect).
///
/// Unlike the reference: one prompt at a time (a second one gets an `error`); an interrupt
/// really stops the request, so no event follows `status` `interrupted`; a failed or interrupted
/// request leaves no dangling user message in the history; analyst answers are kept too (as
/// `analyst` messages with their text and SQL); the timeout bounds the whole request; the body is
/// read as the client takes events (no unbounded queue).
///
/// The requests run one at a time under `run`, each in a task group with its interrupt signal.
actor CortexRuntime: AgentRuntime {
    let context: SessionContext
    private var sink: EventSink { context.sink }
    /// Resolved at creation, so a prompt that arrives before `run` starts is not dropped.
    private let resolved: Result<CortexSettings, CortexSettings.Refusal>
    private var settings: CortexSettings? { try? resolved.get() }
    private var history: [JSON] = []
    private var requestID = 0
    /// The request that is queued or running, and the signal that interrupts it.
    private var active: (id: Int, stop: AsyncStream<Void>.Continuation)?
    /// Interrupts waiting for their request to be gone.
    private var endWaiters: [(id: Int, waiter: CheckedContinuation<Void, Never>)] = []
    /// `run` has returned: nothing waits for a request any more.
    private var closed = false
    private let requests = AsyncStream<Request>.makeStream()

    struct Request: Sendable {
        let id: Int
        let settings: CortexSettings
        let body: JSON
        let stop: AsyncStream<Void>
        /// Held here too, so the stream ends only with the request.
        let signal: AsyncStream<Void>.Continuation
    }

    init(context: SessionContext) {
        self.context = context
        resolved = CortexSettings.resolve(context.handshake, options: context.options)
        history = (try? resolved.get())?.history ?? []
    }

    nonisolated func run() async throws -> Int32? {
        defer { requests.continuation.finish() }
        if case .failure(let refusal) = resolved { throw RPCError(refusal.description) }
        // No child: the session lasts until the client leaves (the stream ends on cancellation).
        for await request in requests.stream {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.perform(id: request.id, settings: request.settings, body: request.body) }
                group.addTask { for await _ in request.stop { return } }
                _ = await group.next()
                group.cancelAll()
            }
            await ended(request.id)
        }
        await ended(nil)
        return nil
    }

    /// The request `id` is gone (nil: all of them, the session ends); wakes the interrupts waiting.
    private func ended(_ id: Int?) {
        if id == nil { closed = true }
        if id == nil || active?.id == id { active = nil }
        for entry in endWaiters where id == nil || entry.id == id { entry.waiter.resume() }
        endWaiters.removeAll { id == nil || $0.id == id }
    }

    // MARK: client messages

    func handle(_ command: ClientCommand) async {
        if case .interrupt = command.action { return await interrupt() }
        let text = command.prompt.joinedText
        if text.isEmpty { return }
        guard let settings, !closed else { return }
        if active != nil {
            await sink.error("Cortex is still answering the previous prompt; wait for it or interrupt it")
            return
        }
        history.append(settings.userMessage(text))
        let body = settings.body(history: history)
        requestID += 1
        let (stop, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        active = (requestID, signal)
        requests.continuation.yield(Request(id: requestID, settings: settings, body: body, stop: stop, signal: signal))
    }

    private func interrupt() async {
        if let running = active, !closed {
            running.stop.yield()
            await withCheckedContinuation { endWaiters.append((running.id, $0)) }
        }
        await sink.send(RelayEvent("status", status: "interrupted"))
    }

    // MARK: the request

    private func perform(id: Int, settings: CortexSettings, body: JSON) async {
        let outcome: Outcome
        do {
            outcome = try await withTimeout(
                settings.timeout,
                orThrow: RPCError("Snowflake Cortex request timed out after \(settings.timeout.components.seconds) s")
            ) {
                try await Self.exchange(settings: settings, body: body, sink: self.context.sink)
            }
        } catch is CancellationError {
            outcome = .failed
        } catch {
            if !Task.isCancelled { await sink.error(Self.describe(error)) }
            outcome = .failed
        }
        finish(id: id, outcome, cancelled: Task.isCancelled)
        if case .answered(let message) = outcome, let message {
            history.append(message)
            await sink.send(
                RelayEvent(
                    "status", metadata: ["cortex_history": .array(Array(history.suffix(40)))],
                    status: "cortex_history_snapshot"))
        }
    }

    private func finish(id: Int, _ outcome: Outcome, cancelled: Bool) {
        if active?.id == id { active = nil }
        if case .failed = outcome {
            // No answer: take the unanswered user message back out of the history.
            if history.last?["role"]?.stringValue == "user" { history.removeLast() }
        } else if cancelled, history.last?["role"]?.stringValue == "user" {
            history.removeLast()
        }
    }

    enum Outcome: Sendable {
        /// The stream ended; the assistant message to remember, if it said anything.
        case answered(JSON?)
        case failed
    }

    /// POSTs the body and forwards the SSE answer; runs off the actor so a slow client only slows
    /// the read of this response.
    private static func exchange(settings: CortexSettings, body: JSON, sink: EventSink) async throws -> Outcome {
        var request = HTTPClientRequest(url: settings.endpoint)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(settings.token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream, application/json")
        if let type = settings.tokenType { request.headers.add(name: "X-Snowflake-Authorization-Token-Type", value: type) }
        request.body = .bytes(ByteBuffer(bytes: body.encoded()))
        let response = try await relayHTTPClient.execute(request, timeout: .seconds(3600))
        guard (200..<300).contains(Int(response.status.code)) else {
            let text = String(buffer: try await collectBody(response.body, limit: 64 * 1024))
            await sink.error("Snowflake Cortex HTTP \(response.status.code): \(text)")
            return .failed
        }
        var parser = CortexSSEParser()
        var lines = LineSplitter(maxLineBytes: 16 * 1024 * 1024)
        var text = ""
        var sql: [Int64: String] = [:]
        func deliver(_ event: (name: String, data: String)) async throws {
            let mapped = CortexEventMapper.map(mode: settings.mode, name: event.name, data: event.data)
            text += mapped.text
            if let piece = mapped.sql { sql[piece.index, default: ""] += piece.delta }
            for e in mapped.events {
                try Task.checkCancellation()
                await sink.send(e)
            }
        }
        for try await chunk in response.body {
            for line in lines.push(chunk) {
                if let event = parser.push(String(decoding: line, as: UTF8.self)) { try await deliver(event) }
            }
        }
        if let tail = lines.finish(), let event = parser.push(String(decoding: tail, as: UTF8.self)) {
            try await deliver(event)
        }
        if let event = parser.finish() { try await deliver(event) }
        try Task.checkCancellation()

        if settings.mode == .analyst {
            var parts: [JSON] = []
            if !text.isEmpty { parts.append(["type": "text", "text": .string(text)]) }
            for (_, statement) in sql.sorted(by: { $0.key < $1.key }) { parts.append(["type": "sql", "statement": .string(statement)]) }
            if parts.isEmpty { return .answered(nil) }
            return .answered(["role": "analyst", "content": .array(parts)])
        }
        if text.isEmpty { return .answered(nil) }
        return .answered(["role": "assistant", "content": [["type": "text", "text": .string(text)]]])
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? RPCError { return e.description }
        if let e = error as? HTTPClientError { return "Snowflake Cortex request failed: \(e)" }
        return "Snowflake Cortex request failed: \(error)"
    }
}
