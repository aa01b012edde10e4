import Foundation
import RelayProtocol
import Testing

@testable import LabCtrlCore

/// A scratch workspace root on disk (symlink checks need real files).
final class Scratch {
    let root: String
    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("lab-fw-\(UUID().uuidString)").path
        for d in ["alice/proj/sub", "bob"] { try FileManager.default.createDirectory(atPath: "\(root)/\(d)", withIntermediateDirectories: true) }
    }
    func link(_ at: String, to target: String) throws { try FileManager.default.createSymbolicLink(atPath: "\(root)/\(at)", withDestinationPath: target) }
    deinit { try? FileManager.default.removeItem(atPath: root) }
}

@Suite struct FolderResolverTests {
    @Test func singleModeView() throws {
        let s = try Scratch()
        let home = "\(s.root)/alice"
        let r = FolderResolver(hostHome: home, workerHome: home)
        try s.link("alice/inside", to: "proj/sub")
        try s.link("alice/abs-inside", to: "\(home)/proj")
        try s.link("alice/out-abs", to: "\(s.root)/bob")
        try s.link("alice/out-rel", to: "../bob")
        try s.link("alice/proj/deep-out", to: "../../bob")
        try s.link("alice/loop1", to: "loop2")
        try s.link("alice/loop2", to: "loop1")
        #expect(r.resolve(nil) == .success(home))
        #expect(r.resolve("") == .success(home))
        #expect(r.resolve(".") == .success(home))
        #expect(r.resolve("proj/./sub/") == .success("\(home)/proj/sub"))
        #expect(r.resolve("proj/sub/..") == .success("\(home)/proj"))
        #expect(r.resolve("\(home)/proj") == .success("\(home)/proj"))
        #expect(r.resolve("inside") == .success("\(home)/proj/sub"))
        #expect(r.resolve("abs-inside/sub") == .success("\(home)/proj/sub"))
        #expect(r.resolve("not-yet-created/x") == .success("\(home)/not-yet-created/x"))
        for escape in ["..", "../bob", "proj/../../bob", "\(s.root)/bob", "\(home)/../bob", "\(home)x", "/", "/etc/passwd",
                       "out-abs", "out-rel", "out-rel/x", "proj/deep-out", "inside/../../../bob"] {
            #expect(r.resolve(escape) == .failure(.outside(escape)), "\(escape)")
        }
        #expect(r.resolve("loop1") == .failure(.invalid("loop1")))
        #expect(r.resolve("a\u{0}b") == .failure(.invalid("a\u{0}b")))
    }

    @Test func containerView() throws {
        let s = try Scratch()
        let r = FolderResolver(hostHome: "\(s.root)/alice", workerHome: "/home/labuser")
        // An absolute link target is read in the container's view.
        try s.link("alice/ok", to: "/home/labuser/proj")
        try s.link("alice/host-path", to: "\(s.root)/bob")
        #expect(r.resolve("/home/labuser/proj") == .success("/home/labuser/proj"))
        #expect(r.resolve("ok/sub") == .success("/home/labuser/proj/sub"))
        #expect(r.resolve("proj") == .success("/home/labuser/proj"))
        #expect(r.resolve("host-path") == .failure(.outside("host-path")))
        #expect(r.resolve("\(s.root)/alice/proj") == .failure(.outside("\(s.root)/alice/proj")))
        #expect(r.resolve("/home/bob") == .failure(.outside("/home/bob")))
    }
}

@Suite struct HandshakeFirewallTests {
    let firewall = HandshakeFirewall(
        allowedTools: ["claude", "codex", "generic", "cortex"], allowedEnv: ["MY_TOKEN"], allowMCPConfig: false, allowCortexCredentials: false)

    func inspect(_ text: String, _ s: Scratch) -> Result<HandshakeFirewall.Accepted, HandshakeFirewall.Refusal> {
        firewall.inspect(Array(text.utf8), folders: FolderResolver(hostHome: "\(s.root)/alice", workerHome: "/home/labuser"))
    }

    @Test func attachFramesPassWithTheirShapeCheckedAndNothingElse() throws {
        let s = try Scratch()
        guard case .success(let a) = inspect(#"{"attach":"S1","after_seq":12,"tool":"generic","env":{"LD_PRELOAD":"x"}}"#, s) else {
            Issue.record("refused")
            return
        }
        #expect(a.sessionID == "S1")
        let o = try #require(try JSON.parse(a.encoded).objectValue)
        #expect(o.keys == ["attach", "after_seq"] && o["after_seq"]?.intValue == 12)
        for bad in [#"{"attach":7}"#, #"{"attach":""}"#, #"{"attach":null}"#, #"{"attach":"S","after_seq":-1}"#, #"{"attach":"S","after_seq":2.5}"#,
            #"{"attach":"S","after_seq":1e300}"#]
        {
            guard case .failure(let r) = inspect(bad, s) else {
                Issue.record("passed \(bad)")
                continue
            }
            #expect(r.field == "attach" && r.text.hasPrefix("Invalid attach"))
        }
    }

    @Test func rewritesTheFolderAndKeepsTheRest() throws {
        let s = try Scratch()
        guard case .success(let a) = inspect(#"{"tool":"Claude","folder":"proj","session_id":"S1","user_id":"bob","model":"m","extra_args":["--max-turns","3"],"env":{"ANTHROPIC_MODEL":"x","MY_TOKEN":"t"}}"#, s) else {
            Issue.record("refused")
            return
        }
        #expect(a.tool == "claude" && a.sessionID == "S1" && a.folder == "/home/labuser/proj")
        let o = try #require(try JSON.parse(a.encoded).objectValue)
        #expect(o["folder"] == "/home/labuser/proj" && o["user_id"] == "bob" && o["model"] == "m")
        #expect(o.keys.first == "tool")
        guard case .success(let d) = inspect("{}", s) else { Issue.record("refused"); return }
        #expect(d.tool == "claude" && d.folder == "/home/labuser" && d.sessionID == "")
    }

    @Test(arguments: [
        (#"{"tool":"bash"}"#, "tool", "tool 'bash' is not allowed"),
        (#"{"tool":["claude"]}"#, "tool", "'tool' must be a string"),
        (#"{"folder":"../bob"}"#, "folder", "outside the permitted workspace root"),
        (#"{"folder":7}"#, "folder", "'folder' must be a string"),
        (#"{"env":{"PATH":"/tmp"}}"#, "env", "env key 'PATH' is not allowed"),
        (#"{"env":{"LD_PRELOAD":"x"}}"#, "env", "env key 'LD_PRELOAD' is not allowed"),
        (#"{"env":{"OPENAI_BASE_URL":"http://x"}}"#, "env", "could redirect the agent"),
        (#"{"env":{"CLAUDE_CONFIG_DIR":"/x"}}"#, "env", "could redirect the agent"),
        (#"{"env":{"AI_RELAY_X":"1"}}"#, "env", "reserved for the operator"),
        (#"{"env":{"RANDOM":"1"}}"#, "env", "not on the allow-list"),
        (#"{"env":{"ANTHROPIC_MODEL":{"a":1}}}"#, "env", "must be a string, number or boolean"),
        (#"{"env":"x"}"#, "env", "'env' must be an object"),
        (#"{"extra_args":"--x"}"#, "extra_args", "extra_args must be a list of strings"),
        (#"{"extra_args":["--max-turns=1;x"]}"#, "extra_args", "disallowed characters"),
        (#"{"extra_args":["--dangerously-skip-permissions"]}"#, "extra_args", "not allowed for claude"),
        (#"{"extra_args":["stray"]}"#, "extra_args", "not allowed for claude"),
        (#"{"tool":"codex","extra_args":["--max-turns=1"]}"#, "extra_args", "not allowed for codex"),
        (#"{"mcp_config":{"mcpServers":{}}}"#, "mcp_config", "mcp_config is not allowed"),
        (#"{"tool":"cortex","snowflake":{"token_env":"X"}}"#, "cortex", "Cortex 'token_env'"),
        (#"{"tool":"cortex","account_url":"https://a"}"#, "cortex", "Cortex 'account_url'"),
        ("not json", "json", "Invalid handshake: Expecting value"),
        ("[1]", "json", "handshake must be a JSON object"),
    ])
    func refusals(_ text: String, _ field: String, _ needle: String) throws {
        let s = try Scratch()
        guard case .failure(let r) = inspect(text, s) else { Issue.record("accepted \(text)"); return }
        #expect(r.field == field)
        #expect(r.text.contains(needle), "\(r.text)")
    }

    @Test func operatorSwitches() throws {
        let s = try Scratch()
        let open = HandshakeFirewall(allowedTools: ["claude", "cortex", "generic"], allowedEnv: ["PATH"], allowMCPConfig: true, allowCortexCredentials: true)
        let resolver = FolderResolver(hostHome: "\(s.root)/alice", workerHome: "/home/labuser")
        for ok in [#"{"mcp_config":{"mcpServers":{"x":{}}}}"#, #"{"env":{"PATH":"/x"}}"#, #"{"tool":"cortex","snowflake":{"token":"t"}}"#,
                   #"{"tool":"generic","extra_args":["-anything"]}"#] {
            guard case .success = open.inspect(Array(ok.utf8), folders: resolver) else { Issue.record("refused \(ok)"); return }
        }
    }
}
