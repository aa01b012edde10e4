import AsyncHTTPClient
import Logging
import NIOCore
import RelayProtocol

/// One Cortex conversation (spec §4.5): each prompt POSTs the whole history to the mode's endpoint
/// and streams the SSE answer as events; the answer is added to the history and the last 40
/// messages go to the client as `status` `cortex_history_snapshot` (to send back as
/// `cortex_history` after a reconnect).
///
/// Unlike the reference (§11.23): one prompt at a time (a second one gets an `error`); an interrupt
/// really stops the request, so no event follows `status` `interrupted`; a failed or interrupted
/// request leaves no dangling user message in the history; analyst answers are kept too (as
/// `analyst` messages with their text and SQL); the timeout bounds the whole request; the body is
/// read as the client takes events (no unbounded queue).
actor CortexRuntime: AgentRuntime {
    let context: SessionContext
    private var sink: EventSink { context.sink }
    private var settings: CortexSettings?
    private var history: [JSON] = []
    private var request: Task<Void, Never>?
    private var requestID = 0

    init(context: SessionContext) { self.context = context }

    nonisolated func run() async throws -> Int32? {
        switch CortexSettings.resolve(context.handshake, options: context.options) {
        case .failure(let refusal): throw RPCError(refusal.description)
        case .success(let settings): await configure(settings)
        }
        // No child: the session lasts until the client leaves.
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(3600)) } catch { break }
        }
        await stop()
        return nil
    }

    private func configure(_ settings: CortexSettings) {
        self.settings = settings
        history = settings.history
    }

    private func stop() {
        request?.cancel()
        request = nil
    }

    // MARK: client messages

    func handle(_ message: ClientMessage) async {
        if message.type == "interrupt" { return await interrupt() }
        let text = Self.promptText(message)
        if text.isEmpty { return }
        guard let settings else { return }
        if request != nil {
            await sink.error("Cortex is still answering the previous prompt; wait for it or interrupt it")
            return
        }
        history.append(settings.userMessage(text))
        let body = settings.body(history: history)
        requestID += 1
        let id = requestID
        request = Task { await self.perform(id: id, settings: settings, body: body) }
    }

    /// `content` (or `text`): the text parts of a block list joined by newlines, else the value as text.
    static func promptText(_ message: ClientMessage) -> String {
        let value = message.content.nonNull ?? message.text ?? .null
        if let blocks = value.arrayValue {
            return blocks.compactMap { b -> String? in
                let t = b["type"]?.stringValue
                guard t == "text" || t == "input_text", let s = b["text"], s.isTruthy else { return nil }
                return s.textValue
            }.joined(separator: "\n")
        }
        return value.isTruthy ? value.textValue : ""
    }

    private func interrupt() async {
        if let running = request {
            running.cancel()
            await running.value
        }
        await sink.send(RelayEvent("status", status: "interrupted"))
    }

    // MARK: the request

    private func perform(id: Int, settings: CortexSettings, body: JSON) async {
        let outcome: Outcome
        do {
            outcome = try await withDeadline(
                settings.timeout,
                "Snowflake Cortex request timed out after \(settings.timeout.components.seconds) s"
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
        if requestID == id { request = nil }
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
            for index in sql.keys.sorted() { parts.append(["type": "sql", "statement": .string(sql[index]!)]) }
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
