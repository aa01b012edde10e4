import ChildProcess
import NIOCore
import RelayProtocol

/// Any interactive CLI in a real terminal. The reference always runs `generic`;
/// here `generic` runs `generic` and operators map further tool names with `--pty-tool`.
struct PTYAdapter: Adapter {
    let executable: String

    func baseCommand(_ handshake: Handshake) -> [String] {
        var argv = [executable]
        if let model = handshake.model, !model.isEmpty { argv += ["--model", model] }
        return argv + handshake.extraArgs
    }

    var allowedFlags: Set<String>? { nil }

    func makeRuntime(_ context: SessionContext) -> any AgentRuntime { PTYRuntime(context: context) }
}

/// Runs the CLI on a 50×500 PTY; each read chunk becomes at most one classified event.
final class PTYRuntime: AgentRuntime {
    let context: SessionContext
    private let input = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(256))

    init(context: SessionContext) { self.context = context }

    func run() async throws -> Int32? {
        var argv = context.command
        argv[0] = ChildSpec.resolve(argv[0], path: context.environment["PATH"]) ?? argv[0]
        let spec = ChildSpec(
            arguments: argv, environment: context.environment, workingDirectory: context.folder,
            terminal: (rows: 50, columns: 500), stopGrace: context.options.stopGrace)
        let sink = context.sink
        let inputs = input.stream
        let (_, status) = try await ChildProcess.run(spec) { child in
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await bytes in inputs { try? await child.write(bytes) }
                }
                var decoder = UTF8Tail()
                do {
                    for try await chunk in child.output {
                        let text = decoder.decode(chunk)
                        let cleaned = TerminalText.clean(text)
                        guard !cleaned.isEmpty else { continue }
                        var trimmed = Substring(cleaned)
                        while trimmed.last == "\n" { trimmed = trimmed.dropLast() }
                        await sink.send(trimmed.isEmpty ? RelayEvent("stdout", text: "") : PTYClassifier.classify(String(trimmed)))
                    }
                } catch {}  // EIO when the child side closes: end of stream
                group.cancelAll()
            }
        }
        return status.code
    }

    /// A message's `text` (whatever its type) is typed followed by CR (TUIs in raw mode treat CR as
    /// Enter); messages without one are ignored.
    func handle(_ command: ClientCommand) async {
        guard let text = command.prompt.text.truthy else { return }
        var s = Substring(text.textValue)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        input.continuation.yield(Array(s.utf8) + [0x0D])
    }
}

/// UTF-8 decoding across chunk boundaries (the reference corrupts characters split between reads).
struct UTF8Tail {
    private var carry: [UInt8] = []

    mutating func decode(_ chunk: ByteBuffer) -> String {
        var bytes = carry + Array(chunk.readableBytesView)
        carry = []
        // Keep an incomplete trailing sequence for the next chunk.
        var i = bytes.count - 1
        var back = 0
        while i >= 0, back < 4, bytes[i] & 0xC0 == 0x80 {
            i -= 1
            back += 1
        }
        if i >= 0 {
            let lead = bytes[i]
            let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if need > 1, bytes.count - i < need {
                carry = Array(bytes[i...])
                bytes.removeSubrange(i...)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
