import ChildProcess
#if canImport(Glibc)
import Glibc
#endif
import HTTPTypes
import Logging
import Testing

@testable import RelayWorkerCore

@Suite struct WorkerAccessTests {
    static let token = "0123456789abcdef0123456789abcdef"

    func headers(_ pairs: [(HTTPField.Name, String)]) -> HTTPFields {
        var h = HTTPFields()
        for (k, v) in pairs { h.append(HTTPField(name: k, value: v)) }
        return h
    }

    @Test func tokenIsRequiredAndCompared() {
        let access = WorkerAccess(token: Self.token, allowedOrigins: [])
        #expect(access.check(headers([])) == .unauthorized)
        #expect(access.check(headers([(.authorization, "Bearer \(Self.token)")])) == .allowed)
        #expect(access.check(headers([(.authorization, "bearer \(Self.token)")])) == .allowed)
        #expect(access.check(headers([(.authorization, "Bearer \(Self.token)x")])) == .unauthorized)
        #expect(access.check(headers([(.authorization, "Bearer " + String(Self.token.dropLast()) + "0")])) == .unauthorized)
        #expect(access.check(headers([(.authorization, "Basic \(Self.token)")])) == .unauthorized)
        #expect(access.check(headers([(.authorization, "Bearer ")])) == .unauthorized)
        // Two Authorization headers are ambiguous: refused even if one is right.
        #expect(
            access.check(headers([(.authorization, "Bearer wrong"), (.authorization, "Bearer \(Self.token)")])) == .unauthorized)
    }

    @Test func foreignOriginIsRefusedEvenWithTheToken() {
        let access = WorkerAccess(token: Self.token, allowedOrigins: ["https://lab.example"])
        let auth = (HTTPField.Name.authorization, "Bearer \(Self.token)")
        #expect(access.check(headers([auth, (.origin, "http://evil.example")])) == .foreignOrigin("http://evil.example"))
        #expect(access.check(headers([auth, (.origin, "null")])) == .foreignOrigin("null"))
        #expect(access.check(headers([auth, (.origin, "https://lab.example")])) == .allowed)
        // Library clients (not pages) send ws:// origins; the token still applies to them.
        #expect(access.check(headers([auth, (.origin, "ws://127.0.0.1")])) == .allowed)
        #expect(access.check(headers([(.origin, "ws://127.0.0.1")])) == .unauthorized)
        #expect(access.check(headers([auth, (.origin, "ws://x"), (.origin, "http://evil.example")])) != .allowed)
        // Without a token (loopback-only worker) the Origin rule still holds.
        let open = WorkerAccess(token: nil, allowedOrigins: [])
        #expect(open.check(headers([])) == .allowed)
        #expect(open.check(headers([(.origin, "http://127.0.0.1:8080")])) == .foreignOrigin("http://127.0.0.1:8080"))
    }

    @Test func constantTimeEqualCompares() {
        #expect(WorkerAccess.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!WorkerAccess.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!WorkerAccess.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        #expect(WorkerAccess.constantTimeEqual([], []))
    }

    @Test func clientTextInLogsIsQuotedEscapedAndCapped() {
        #expect(Logger.MetadataValue.client("/a b") == .string(#""/a b""#))
        // A forged second log line, a terminal escape, a Unicode line separator and a bidi override.
        #expect(Logger.MetadataValue.client("x\ny\u{1B}[2J\u{2028}\u{202E}\"\\é") == .string(#""x\ny\u{1B}[2J\u{2028}\u{202E}\"\\é""#))
        let long = String(repeating: "a", count: 5000)
        #expect(Logger.MetadataValue.client(long) == .string("\"" + String(repeating: "a", count: 200) + "…\""))
        #expect(Logger.MetadataValue.client(String(repeating: "a", count: 200)) == .string("\"" + String(repeating: "a", count: 200) + "\""))
    }

    @Test func environmentSecretIsScrubbed() {
        setenv("LAB_TEST_SECRET_SCRUB", "s3cret-value", 1)
        #expect(ProcessHardening.takeEnvironmentSecret("LAB_TEST_SECRET_SCRUB") == "s3cret-value")
        #expect(getenv("LAB_TEST_SECRET_SCRUB") == nil)
        #expect(ProcessHardening.takeEnvironmentSecret("LAB_TEST_SECRET_SCRUB") == nil)
    }
}
