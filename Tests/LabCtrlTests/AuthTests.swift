import Foundation
import HTTPTypes
import HummingbirdCore
import JWTKit
import Testing

@testable import LabCtrlCore

@Suite struct AuthTests {
    static let secret = "unit-test-secret-0123456789abcdef-0123"

    func hs256(_ payload: [String: Any], header: [String: Any] = ["alg": "HS256", "typ": "JWT"], secret: String = secret) async throws -> String {
        let h = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: header)))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: payload)))
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        // Sign a throw-away token to reuse jwt-kit's HMAC, then splice our own header/payload in.
        let signer = try await keys.getKey()
        let sig = try signer.sign(Array("\(h).\(p)".utf8))
        return "\(h).\(p).\(Base64URL.encode(sig))"
    }

    func verifier(issuer: String? = nil, audience: String? = nil) async throws -> JWTVerifier {
        var c = LabConfig()
        c.jwtSecret = Self.secret
        c.jwtIssuer = issuer
        c.jwtAudience = audience
        return try await JWTVerifier.make(c)!
    }

    var now: Int { Int(Date().timeIntervalSince1970) }

    @Test func acceptsAValidToken() async throws {
        let v = try await verifier()
        #expect(try await v.verify(hs256(["sub": "alice", "exp": now + 60])) == .success(UserID("alice")!))
    }

    @Test func refusals() async throws {
        let v = try await verifier(issuer: "iss-1", audience: "aud-1")
        let good: [String: Any] = ["sub": "bob", "exp": now + 60, "iss": "iss-1", "aud": ["x", "aud-1"]]
        #expect(try await v.verify(hs256(good)) == .success(UserID("bob")!))
        var expired = good
        expired["exp"] = now - 60
        #expect(try await v.verify(hs256(expired)) == .failure(.expired))
        var noExp = good
        noExp["exp"] = nil
        #expect(try await v.verify(hs256(noExp)) == .failure(.malformed))
        var future = good
        future["nbf"] = now + 600
        #expect(try await v.verify(hs256(future)) == .failure(.notYetValid))
        var wrongIss = good
        wrongIss["iss"] = "other"
        #expect(try await v.verify(hs256(wrongIss)) == .failure(.wrongIssuer))
        var wrongAud = good
        wrongAud["aud"] = "other"
        #expect(try await v.verify(hs256(wrongAud)) == .failure(.wrongAudience))
        var badSub = good
        badSub["sub"] = "../etc"
        #expect(try await v.verify(hs256(badSub)) == .failure(.invalidSubject))
        #expect(try await v.verify(hs256(good, secret: "another-secret-0123456789abcdef-0123")) == .failure(.badSignature))
        #expect(try await v.verify(hs256(good, header: ["alg": "HS512"])) == .failure(.algorithmNotAllowed))
        // alg: none, unsigned.
        let h = Base64URL.encode(Array(#"{"alg":"none","typ":"JWT"}"#.utf8))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: good)))
        #expect(await v.verify("\(h).\(p).") == .failure(.algorithmNotAllowed))
        #expect(await v.verify("a.b") == .failure(.malformed))
        #expect(await v.verify("!!.!!.!!") == .failure(.malformed))
    }

    @Test func tokenFileAndAdmin() async throws {
        let tokens = try TemporaryTokensFile("lab-auth", contents: "# users\nalice alice-token-000000000000\nbob   bob-token-0000000000000\n")
        defer { tokens.remove() }
        let path = tokens.path
        var c = LabConfig()
        c.tokensFile = path
        c.adminToken = "the-admin-token-123"
        let auth = try await Authenticator.make(c)
        #expect(await auth.authenticate("alice-token-000000000000") == .success(UserID("alice")!))
        #expect(await auth.authenticate("bob-token-0000000000000") == .success(UserID("bob")!))
        #expect(await auth.authenticate("alice-token-00000000000") == .failure(.unknownToken))
        #expect(await auth.authenticate(nil) == .failure(.missing))
        #expect(auth.isAdmin("the-admin-token-123") && !auth.isAdmin("alice-token-000000000000") && !auth.isAdmin(nil))
        // Revocation without restart: the file is re-read when it changes.
        try await Task.sleep(for: .milliseconds(20))
        try "bob bob-token-0000000000000\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await auth.authenticate("alice-token-000000000000") == .failure(.unknownToken))
        #expect(throws: ConfigError.self) { try TokensFile.parse("alice short\n") }
        #expect(throws: ConfigError.self) { try TokensFile.parse("../x token-token-token-token\n") }
        #expect(throws: ConfigError.self) { try TokensFile.parse("a same-token-123456789\nb same-token-123456789\n") }
    }

    @Test func generatedTokenOnlyForSingleModeOnLoopback() async throws {
        var c = LabConfig()
        let auth = try await Authenticator.make(c)
        let generated = try #require(auth.generated)
        #expect(generated.user.value == "local" && generated.token.count >= 43)
        #expect(await auth.authenticate(generated.token) == .success(generated.user))
        c.host = "0.0.0.0"
        await #expect(throws: ConfigError.self) { try await Authenticator.make(c) }
        c.host = "127.0.0.1"
        c.mode = .multi
        await #expect(throws: ConfigError.self) { try await Authenticator.make(c) }
    }

    @Test func credentialSources() {
        #expect(CredentialExtraction.bearerToken([.authorization: "Bearer abc"]) == "abc")
        #expect(CredentialExtraction.bearerToken([.authorization: "Basic abc"]) == nil)
        #expect(CredentialExtraction.token(headers: [.cookie: "a=1; lab_token=xyz; b=2"], uri: URI("/ws")) == "xyz")
        #expect(CredentialExtraction.token(headers: [:], uri: URI("/ws?token=q%2Bv")) == "q+v")
        #expect(CredentialExtraction.token(headers: [.authorization: "Bearer h"], uri: URI("/ws?token=q")) == "h")
        #expect(CredentialExtraction.token(headers: [:], uri: URI("/ws")) == nil)
    }
}
