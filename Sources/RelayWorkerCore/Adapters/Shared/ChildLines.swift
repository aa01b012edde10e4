import ChildProcess
import NIOCore
import RelayProtocol

/// Line-oriented reading of a structured child (claude stream-json, codex app-server, gemini ACP):
/// one JSON message per line on stdout, free text on stderr. Each line is handled before the next chunk is read, so a slow
/// client slows the child down instead of filling memory.
enum ChildLines {
    /// How stderr lines become `stderr` events.
    enum StderrStyle: Sendable {
        /// Right-trimmed; blank lines skipped (codex, gemini: the reference's `rstrip()`).
        case rightTrimmed
        /// As written; lines that are only whitespace skipped (claude).
        case asWritten
    }

    /// Drives a child: its stdout reader and stderr pump run while `start` does the protocol
    /// handshake (which needs the reader); returns when stdout ends, giving stderr `stderrGrace`
    /// to finish.
    static func drive(
        _ child: RunningChild, sink: EventSink, stderr style: StderrStyle = .rightTrimmed,
        stderrGrace: Duration = .milliseconds(300), readStdout: @escaping @Sendable () async -> Void,
        start: () async throws -> Void = {}
    ) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await readStdout()
                return true
            }
            group.addTask {
                await pumpStderr(of: child, to: sink, style: style)
                return false
            }
            try await start()
            var stderrEnded = false
            while let stdoutEnded = try await group.next(), !stdoutEnded { stderrEnded = true }
            guard !stderrEnded else { return }
            group.addTask {
                try? await Task.sleep(for: stderrGrace)
                return false
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Calls `body` for every stdout line until EOF (or cancellation). A line over the cap is skipped
    /// and reported through `overflow`.
    static func forEachLine(
        of child: RunningChild, overflow: (Int) async -> Void, _ body: ([UInt8]) async -> Void
    ) async {
        var lines = LineSplitter()
        do {
            for try await chunk in child.output {
                for line in lines.push(chunk) { await body(line) }
                if lines.takeOverflow() { await overflow(lines.maxLineBytes) }
                if Task.isCancelled { return }
            }
        } catch {}
        if let tail = lines.finish() { await body(tail) }
    }

    /// Forwards stderr as `stderr` events, in `style`.
    static func pumpStderr(of child: RunningChild, to sink: EventSink, style: StderrStyle = .rightTrimmed) async {
        guard let errors = child.errors else { return }
        var lines = LineSplitter()
        func emit(_ line: [UInt8]) async {
            let text = String(decoding: line, as: UTF8.self)
            switch style {
            case .rightTrimmed:
                var trimmed = Substring(text)
                while let last = trimmed.unicodeScalars.last, last.properties.isWhitespace { trimmed = trimmed.dropLast() }
                if !trimmed.isEmpty { await sink.send(RelayEvent("stderr", text: String(trimmed))) }
            case .asWritten:
                if !text.trimmed.isEmpty { await sink.send(RelayEvent("stderr", text: text)) }
            }
        }
        do {
            for try await chunk in errors {
                for line in lines.push(chunk) { await emit(line) }
            }
        } catch {}
        if let tail = lines.finish() { await emit(tail) }
    }

    /// The line as a JSON object, or nil (blank, not JSON, or JSON that is not an object).
    static func object(_ line: [UInt8]) -> JSON? {
        guard let value = try? JSON.parse(line), case .object = value else { return nil }
        return value
    }
}
