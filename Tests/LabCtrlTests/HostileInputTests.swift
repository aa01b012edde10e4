import Foundation
import NIOCore
import NIOWebSocket
import RelayProtocol
import Testing

@testable import LabCtrlCore

/// Hostile input at the controller: UTF-8 strictness, no big parse on the event loop, origins, caps,
/// tokens-file revocation.
@Suite struct HostileInputTests {
    // ---- UTF-8 (RFC 6455 §8.1) -------------------------------------------------------------------

    func valid(_ bytes: [UInt8], key: WebSocketMaskingKey? = nil, split: Int? = nil) -> Bool {
        var v = UTF8Validator()
        let masked: [UInt8] = key.map { k in bytes.enumerated().map { $0.element ^ k[$0.offset & 3] } } ?? bytes
        guard let split else { return v.feed(ByteBuffer(bytes: masked), key: key) && v.isComplete }
        // Two frames: each frame's mask starts again at offset 0.
        let a = Array(bytes[..<split]), b = Array(bytes[split...])
        let ma = key.map { k in a.enumerated().map { $0.element ^ k[$0.offset & 3] } } ?? a
        let mb = key.map { k in b.enumerated().map { $0.element ^ k[$0.offset & 3] } } ?? b
        return v.feed(ByteBuffer(bytes: ma), key: key) && v.feed(ByteBuffer(bytes: mb), key: key) && v.isComplete
    }

    @Test func utf8AcceptsWhatSwiftAccepts() {
        let key = WebSocketMaskingKey([0x37, 0xFA, 0x21, 0x3D])!
        let samples = ["", "plain ascii that is longer than eight bytes", "héllo wörld", "日本語のテキスト", "emoji 😀🎉 mixed", "\u{10FFFF}", "\u{7FF}\u{800}\u{FFFF}\u{10000}"]
        for s in samples {
            let b = Array(s.utf8)
            #expect(valid(b), "\(s)")
            #expect(valid(b, key: key), "\(s) masked")
            for cut in 0...b.count { #expect(valid(b, key: key, split: cut), "\(s) split at \(cut)") }
        }
    }

    @Test func utf8RejectsInvalidSequences() {
        let key = WebSocketMaskingKey([1, 2, 3, 4])!
        let bad: [[UInt8]] = [
            [0xFF], [0x80], [0xC0, 0xAF], [0xC1, 0xBF],  // stray / overlong 2-byte
            [0xE0, 0x80, 0xAF],  // overlong 3-byte
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],  // surrogates U+D800, U+DFFF
            [0xF0, 0x80, 0x80, 0xAF],  // overlong 4-byte
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],  // above U+10FFFF
            [0x61, 0xE2, 0x82],  // truncated at the end of the message
            Array("valid prefix long enough for the word loop ".utf8) + [0xC3, 0x28],
        ]
        for b in bad {
            #expect(!valid(b), "\(b)")
            #expect(!valid(b, key: key), "\(b) masked")
            // Cross-checked with the standard library.
            #expect(String(validating: b, as: UTF8.self) == nil)
        }
        // A character split across frames is fine, a message ending inside one is not.
        var v = UTF8Validator()
        #expect(v.feed(ByteBuffer(bytes: [0xE2, 0x82]), key: nil) && !v.isComplete)
        #expect(v.feed(ByteBuffer(bytes: [0xAC]), key: nil) && v.isComplete)
    }

    @Test func utf8RandomBytesAgreeWithTheStandardLibrary() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<24, using: &rng)
            let b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(valid(b) == (String(validating: b, as: UTF8.self) != nil), "\(b)")
        }
    }

    // ---- the event loop never parses big frames --------------------------------------------------

    @Test func bigFramesAreScannedNotParsed() {
        let filler = String(repeating: "x", count: FrameInspector.parseLimit)
        let big = ByteBuffer(string: #"{"type":"permission_request","request_id":"req-7","tool":"Write","input":{"content":""# + filler + #""}}"#)
        #expect(FrameInspector.object(big) == nil)
        #expect(FrameInspector.scanRequestID(big) == .string("req-7"))
        let numeric = ByteBuffer(string: #"{"type":"permission_request", "request_id" : 42,"input":""# + filler + #""}"#)
        #expect(FrameInspector.scanRequestID(numeric) == .int(42))
        // A quoted "request_id" inside a string value is escaped, so it is not taken for the key.
        let decoy = ByteBuffer(string: #"{"type":"permission_request","input":"\"request_id\": 1","request_id":"real"}"#)
        #expect(FrameInspector.scanRequestID(decoy) == .string("real"))
        #expect(FrameInspector.scanRequestID(ByteBuffer(string: #"{"request_id":"unterminated"#)) == nil)
        #expect(FrameInspector.scanRequestID(ByteBuffer(string: #"{"request_id" x}"#)) == nil)
    }

    @Test func hugeInputAckCountsAsATurnWithoutAParse() {
        let ack = ByteBuffer(string: #"{"type":"input_ack","text":""# + String(repeating: "y", count: 1 << 20) + #""}"#)
        var a = ConnectionActivity(now: .now)
        // What ProxySession.track does for a big ack: no text, so it is a turn.
        #expect(FrameInspector.object(ack) == nil)
        #expect(a.workerEvent("input_ack", ackText: nil, now: .now) == .turnStarted)
    }

    // ---- origins ------------------------------------------------------------------------------------

    @Test func originPolicy() {
        let p = OriginPolicy(allowedOrigins: ["https://Lab.Example.com", "http://tool.local:3000/"])
        #expect(p.permits(origin: nil, host: "127.0.0.1:8080"))  // non-browser client
        #expect(p.permits(origin: "http://127.0.0.1:8080", host: "127.0.0.1:8080"))
        #expect(p.permits(origin: "https://lab.example.com", host: "10.0.0.1:8080"))
        #expect(p.permits(origin: "https://lab.example.com:443", host: "x"))
        #expect(p.permits(origin: "http://tool.local:3000", host: "x"))
        #expect(p.permits(origin: "http://lab.example.com", host: "lab.example.com:80"))
        #expect(p.permits(origin: "http://[::1]:8080", host: "[::1]:8080"))
        #expect(!p.permits(origin: "http://evil.example", host: "127.0.0.1:8080"))
        #expect(!p.permits(origin: "http://127.0.0.1:8081", host: "127.0.0.1:8080"))
        #expect(!p.permits(origin: "null", host: "127.0.0.1:8080"))
        #expect(!p.permits(origin: "http://127.0.0.1:8080@evil", host: "127.0.0.1:8080"))
        #expect(!p.permits(origin: "http://127.0.0.1:8080", host: nil))
        #expect(!p.permits(origin: "", host: "x"))
        #expect(OriginPolicy.normalize("ftp://x") == nil && OriginPolicy.normalize("https://x/path") == nil)
        #expect(OriginPolicy.normalize("http://x:99999") == nil && OriginPolicy.normalize("http://:80") == nil)
    }

    @Test func allowedOriginsAreCheckedAtStart() {
        #expect(throws: ConfigError.self) { try LabConfig.fromEnvironment(["LAB_ALLOWED_ORIGINS": "https://ok.example,not an origin"]) }
        let c = try? LabConfig.fromEnvironment(["LAB_ALLOWED_ORIGINS": "https://a.example, http://b.example:81", "LAB_MAX_CONNECTIONS_PER_USER": "0"])
        #expect(c?.allowedOrigins == ["https://a.example", "http://b.example:81"] && c?.maxConnectionsPerUser == 0)
        #expect(throws: ConfigError.self) { try LabConfig.fromEnvironment(["LAB_MAX_HANDSHAKE_BYTES": "10"]) }
        #expect(throws: ConfigError.self) { try LabConfig.fromEnvironment(["LAB_TOKENS_RELOAD_SECS": "0"]) }
        #expect(throws: ConfigError.self) { try LabConfig.fromEnvironment(["LAB_HTTP_IDLE_TIMEOUT_SECS": "nan"]) }
    }

    // ---- connection caps ------------------------------------------------------------------------------

    @Test func connectionCaps() throws {
        let r = ConnectionRegistry(maxPerUser: 2, maxTotal: 3)
        let a = UserID("alice")!, b = UserID("bob")!
        let a1 = try r.admit(a, token: "t").get()
        _ = try r.admit(a, token: "t").get()
        #expect(throws: ConnectionRegistry.Refusal.perUser) { try r.admit(a, token: "t").get() }
        let b1 = try r.admit(b, token: "u").get()
        #expect(throws: ConnectionRegistry.Refusal.total) { try r.admit(b, token: "u").get() }
        r.release(a1)
        r.release(a1)  // twice: no effect
        #expect(r.count == 2 && r.count(of: a) == 1)
        _ = try r.admit(a, token: "t").get()
        r.release(b1)
        #expect(r.count(of: b) == 0)
        let unlimited = ConnectionRegistry(maxPerUser: 0, maxTotal: 0)
        for _ in 0..<100 { _ = try unlimited.admit(a, token: "t").get() }
    }

    @Test func revocationMarksBeforeTheCloserIsSet() throws {
        let r = ConnectionRegistry(maxPerUser: 0, maxTotal: 0)
        let id = try r.admit(UserID("a")!, token: "t").get()
        #expect(r.revoke(id, why: "revoked") == nil)
        #expect(r.setCloser(id) { _ in } == "revoked")
        #expect(r.snapshot().isEmpty)  // not revoked twice
    }

    // ---- tokens file: fail closed, report errors ---------------------------------------------------------

    final class Reports: @unchecked Sendable {
        let lock = NSLock()
        var kinds: [String] = []
        func add(_ k: String) { lock.withLock { kinds.append(k) } }
        var all: [String] { lock.withLock { kinds } }
    }

    @Test func tokensFileFailsClosedAndReports() throws {
        let tokens = try TemporaryTokensFile("tokens", contents: "alice alice-token-0123456789\nbob bob-token-0123456789abc\n")
        defer { tokens.remove() }
        let path = tokens.path
        let reports = Reports()
        let file = try TokensFile(path: path) { reports.add($0.kind.rawValue) }
        #expect(file.user(for: "alice-token-0123456789") == UserID("alice"))

        // Revoke bob by rewriting the file (rename-replace: same size is fine, the inode changes).
        try "alice alice-token-0123456789\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(file.user(for: "bob-token-0123456789abc") == nil)
        #expect(reports.all.isEmpty)

        // Malformed: reported once, last good tokens kept.
        try "alice alice-token-0123456789\nthis line is bad\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(file.reloadIfChanged()?.kind == .malformed)
        #expect(file.reloadIfChanged() == nil)  // once per change
        #expect(file.user(for: "alice-token-0123456789") == UserID("alice"))

        // Missing: nobody gets in.
        try FileManager.default.removeItem(atPath: path)
        #expect(file.user(for: "alice-token-0123456789") == nil)
        #expect(file.count == 0)

        // Back: accepted again.
        try "alice alice-token-0123456789\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(file.user(for: "alice-token-0123456789") == UserID("alice"))

        // Unreadable (a directory where the file was): fails closed too.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(file.user(for: "alice-token-0123456789") == nil)
        #expect(reports.all == ["malformed", "missing", "unreadable"])
    }
}
