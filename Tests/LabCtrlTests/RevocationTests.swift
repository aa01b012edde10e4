import Foundation
import Logging
import Synchronization
import Testing

@testable import LabCtrlCore

/// One revocation pass against a real tokens file and real JWTs: who gets closed, and why.
@Suite struct RevocationTests {
    final class Closed: Sendable {
        let reasons = Mutex<[String: String]>([:])
        func closer(_ name: String) -> ConnectionRegistry.Closer { { why in self.reasons.withLock { $0[name] = why } } }
        var all: [String: String] { reasons.withLock { $0 } }
    }

    @Test func removedTokensAndExpiredJWTsAreClosedOnce() async throws {
        let tokens = try TemporaryTokensFile("revoke", contents: "alice alice-token-0123456789\nbob bob-token-0123456789abc\n")
        defer { tokens.remove() }
        let path = tokens.path
        var config = LabConfig()
        config.tokensFile = path
        config.jwtSecret = AuthTests.secret
        let auth = try await Authenticator.make(config)
        let soon = try await AuthTests().hs256(["sub": "carol", "exp": Int(Date().timeIntervalSince1970) - 10])  // past exp + leeway
        let later = try await AuthTests().hs256(["sub": "dave", "exp": Int(Date().timeIntervalSince1970) + 600])

        let registry = ConnectionRegistry(maxPerUser: 0, maxTotal: 0)
        let closed = Closed()
        for (name, user, token) in [
            ("alice", "alice", "alice-token-0123456789"), ("bob", "bob", "bob-token-0123456789abc"), ("carol", "carol", soon),
            ("dave", "dave", later), ("mallory", "bob", "alice-token-0123456789"),  // alice's token under another user
        ] {
            let id = try registry.admit(UserID(user)!, token: token).get()
            #expect(registry.setCloser(id, closed.closer(name)) == nil)
        }
        let service = RevocationService(auth: auth, registry: registry, metrics: LabMetrics(), interval: .seconds(1), logger: Logger(label: "test"))

        try "bob bob-token-0123456789abc\n".write(toFile: path, atomically: true, encoding: .utf8)  // alice revoked
        #expect(await service.pass() == 3)
        #expect(closed.all == ["alice": "revoked", "carol": "expired", "mallory": "revoked"])
        #expect(await service.pass() == 0)  // each socket is closed once

        try FileManager.default.removeItem(atPath: path)  // fail closed: bob goes too, dave (JWT) stays
        #expect(await service.pass() == 1)
        #expect(closed.all["bob"] == "revoked" && closed.all["dave"] == nil)
    }
}
