import FuzzDriver
import NIOCore
import RelayProtocol
// FrameInspector and ProxySession's classifiers are internal; debug builds are built for testing.
@testable import LabCtrlCore

#if canImport(Glibc)
import Glibc
#endif

/// The controller's looks into proxied frames (FrameInspector, the client-frame classifier) and the
/// handshake firewall must not trap on any bytes; `contains` must agree with a naive search.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameInspector(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let buffer = ByteBuffer(bytes: bytes)

    if let type = FrameInspector.leadingType(buffer) {
        guard !type.utf8.contains(UInt8(ascii: "\"")), !type.utf8.contains(UInt8(ascii: "\\")) else { fatalError("quote in type") }
    }
    for (needle, naive) in [("ping", Array("ping".utf8)), ("permission_response", Array("permission_response".utf8)), ("{", [UInt8(ascii: "{")])] {
        let found: Bool
        switch needle {
        case "ping": found = FrameInspector.contains(buffer, "ping")
        case "{": found = FrameInspector.contains(buffer, "{")
        default: found = FrameInspector.contains(buffer, "permission_response")
        }
        guard found == contains(bytes, naive) else { fatalError("contains(\(needle)) disagrees with a naive search") }
    }
    let object = FrameInspector.object(buffer)
    _ = FrameInspector.requestKey(object?["request_id"])
    _ = FrameInspector.requestKey(FrameInspector.scanRequestID(buffer))
    _ = ProxySession.classifyClient(buffer)

    switch firewall.inspect(Array(bytes), folders: folders) {
    case .success(let accepted):
        guard accepted.folder.hasPrefix(folders.workerHome) else { fatalError("folder outside the home: \(accepted.folder)") }
        guard firewall.allowedTools.contains(accepted.tool) else { fatalError("tool not allowed: \(accepted.tool)") }
        _ = accepted.encoded
    case .failure: break
    }
    return 0
}

private func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
    guard haystack.count >= needle.count else { return false }
    for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return true
    }
    return false
}

/// An empty home on the host; the firewall walks it as the worker would see `/home/lab`.
private let folders: FolderResolver = {
    var template = Array("/tmp/lab-fuzz-home.XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    return FolderResolver(hostHome: String(cString: dir), workerHome: "/home/lab")
}()

private let firewall = HandshakeFirewall(
    allowedTools: ["claude", "codex", "gemini", "cortex", "generic"], allowedEnv: [], allowMCPConfig: false, allowCortexCredentials: false)

@main enum FuzzFrameInspectorMain {
    static func main() { exit(lab_fuzz_driver_run(CommandLine.argc, CommandLine.unsafeArgv)) }
}
