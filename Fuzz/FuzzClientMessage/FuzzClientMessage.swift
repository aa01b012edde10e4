import FuzzDriver
import RelayProtocol
import RelayWorkerCore

#if canImport(Glibc)
import Glibc
#endif

/// Every client frame after the handshake: the parse into a `ClientCommand` and everything the
/// session and the runtimes read from it (ack, the prompt readings, ids, settings) must not trap on
/// any text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientMessage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = ClientMessage(frame: text).requestID
    guard case .success(let parsed) = ClientCommand.parse(text), let command = parsed else { return 0 }
    if let ack = command.ack { _ = ack.encoded() }
    let prompt = command.prompt
    _ = prompt.trimmedText
    _ = prompt.joinedText
    _ = prompt.textAndImages
    _ = prompt.contentBlocks.map { $0.encoded() }
    switch command.action {
    case .permissionAnswer(let answer):
        _ = answer.verdict.allows
        for key in ["updatedInput", "optionId", "response", "message", "tool_use_id"] { _ = answer.fields[key]?.textValue }
    case .setModel(let model): _ = model?.textValue
    case .setPermissionMode(let change, _):
        _ = change.mode
        _ = change.approvalPolicy?.textValue
    case .rawRequest(let method, let params):
        _ = method
        _ = params.encoded()
    case .controlResponse(let id, let message):
        _ = id
        _ = message["response"]?.encoded()
    case .prompt, .interrupt, .claudeUpdate, .passive:
        break
    }
    return 0
}

@main enum FuzzClientMessageMain {
    static func main() { exit(lab_fuzz_driver_run(CommandLine.argc, CommandLine.unsafeArgv)) }
}
