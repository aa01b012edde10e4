import FuzzDriver
import RelayProtocol
import RelayWorkerCore

#if canImport(Glibc)
import Glibc
#endif

/// The worker's first frame: Handshake.parse and the shared HandshakeRules must refuse or accept any
/// text without trapping, and what they accept must hold the promised properties.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshake(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let handshake = try? Handshake.parse(text, newSessionID: { "generated" }) else { return 0 }
    guard handshake.tool == handshake.toolAsSent.lowercased() else { fatalError("tool not lower-cased") }
    guard !handshake.folder.utf8.contains(0) else { fatalError("NUL in an accepted folder") }
    guard handshake.sessionID.utf8.count <= 256 || handshake.sessionID == "generated" else { fatalError("session_id over 256 bytes") }
    for arg in handshake.extraArgs {
        guard !arg.isEmpty, arg.utf8.allSatisfy(HandshakeRules.isArgCharacter) else { fatalError("bad extra_arg accepted: \(arg)") }
    }
    for (key, value) in handshake.env {
        guard !key.isEmpty, !key.contains("="), !key.utf8.contains(0), !value.utf8.contains(0) else {
            fatalError("bad env entry accepted: \(key)")
        }
        _ = HandshakeRules.envRefusal(for: key, operatorAllowed: [])
        _ = HandshakeRules.envRefusal(for: key, operatorAllowed: ["LAB_FUZZ"])
    }
    // The three flag policies of the adapters: Claude-like, none, and any (PTY tools).
    _ = HandshakeRules.refusedArgument(handshake.extraArgs, allowed: HandshakeRules.claudeFlags)
    _ = HandshakeRules.refusedArgument(handshake.extraArgs, allowed: [])
    guard HandshakeRules.refusedArgument(handshake.extraArgs, allowed: nil) == nil else { fatalError("nil allow-list refused") }
    return 0
}

@main enum FuzzHandshakeMain {
    static func main() { exit(lab_fuzz_driver_run(CommandLine.argc, CommandLine.unsafeArgv)) }
}
