import Foundation
import JWTKit
import RelayProtocol

/// Verifies user JWTs: HS256 with `LAB_JWT_SECRET`, or RS256/ES256 with the PEM in `LAB_JWT_PUBLIC_KEY_FILE`.
///
/// The header's `alg` must be exactly the algorithm of the configured key *before* the signature is
/// checked, which refuses `alg: none` and algorithm-confusion tokens outright. `exp` is required;
/// `nbf`, `iss` and `aud` are enforced when present or configured. The user id is `sub`.
public struct JWTVerifier: Sendable {
    public let algorithm: String
    let keys: JWTKeyCollection
    let issuer: String?
    let audience: String?
    /// Tolerated clock difference for `exp`/`nbf`.
    let leeway: TimeInterval

    /// Builds the verifier from the configuration; `nil` when no JWT key is configured.
    /// Throws ``ConfigError`` naming the variable when the key is unusable.
    public static func make(_ config: LabConfig) async throws(ConfigError) -> JWTVerifier? {
        let keys = JWTKeyCollection()
        if let secret = config.jwtSecret {
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            return JWTVerifier(algorithm: "HS256", keys: keys, issuer: config.jwtIssuer, audience: config.jwtAudience, leeway: 5)
        }
        guard let path = config.jwtPublicKeyFile else { return nil }
        guard let pem = readTextFile(path) else {
            throw ConfigError(variable: "LAB_JWT_PUBLIC_KEY_FILE", value: path, expected: "a readable PEM file")
        }
        if let rsa = try? Insecure.RSA.PublicKey(pem: pem) {
            await keys.add(rsa: rsa, digestAlgorithm: .sha256)
            return JWTVerifier(algorithm: "RS256", keys: keys, issuer: config.jwtIssuer, audience: config.jwtAudience, leeway: 5)
        }
        if let ec = try? ES256PublicKey(pem: pem) {
            await keys.add(ecdsa: ec)
            return JWTVerifier(algorithm: "ES256", keys: keys, issuer: config.jwtIssuer, audience: config.jwtAudience, leeway: 5)
        }
        throw ConfigError(
            variable: "LAB_JWT_PUBLIC_KEY_FILE", value: path,
            expected: "a PEM public key: RSA (at least 2048 bits, for RS256) or EC P-256 (for ES256)")
    }

    /// True when `token` has the shape of a JWT (three base64url parts), so the token file can be tried
    /// for anything else.
    public static func looksLikeJWT(_ token: String) -> Bool {
        token.utf8.count(where: { $0 == UInt8(ascii: ".") }) == 2
    }

    /// The verified user, or why not.
    public func verify(_ token: String, now: Date = Date()) async -> Result<UserID, AuthFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(parts[0]),
            let header = try? JSON.parse(headerBytes), let alg = header["alg"]?.stringValue
        else { return .failure(.malformed) }
        guard alg == algorithm else { return .failure(.algorithmNotAllowed) }
        let claims: LabClaims
        do {
            claims = try await keys.verify(token, as: LabClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(.badSignature)
        } catch {
            // Decoding failures (missing sub, bad types) and anything else.
            return .failure(.malformed)
        }
        guard let exp = claims.exp else { return .failure(.malformed) }
        if exp.value.addingTimeInterval(leeway) <= now { return .failure(.expired) }
        if let nbf = claims.nbf, nbf.value.addingTimeInterval(-leeway) > now { return .failure(.notYetValid) }
        if let issuer, claims.iss?.value != issuer { return .failure(.wrongIssuer) }
        if let audience, !(claims.aud?.value.contains(audience) ?? false) { return .failure(.wrongAudience) }
        guard let user = UserID(claims.sub.value) else { return .failure(.invalidSubject) }
        return .success(user)
    }
}

/// The claims we read. Checks happen in ``JWTVerifier/verify(_:now:)`` so each failure has its reason.
struct LabClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// base64url without padding (RFC 7515 §2), as JWT segments use it.
enum Base64URL {
    static func decode(_ s: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in s.utf8 {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "_"): v = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            acc = (acc << 6) | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xFF))
            }
        }
        return out
    }

    static func encode(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)], table[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)]]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
