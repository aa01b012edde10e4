/// Turns a presented credential into a verified ``UserID``.
///
/// Sources, tried in order: the operator token file, then JWT (when the token looks like one), then the
/// token generated at start-up in single mode on loopback. The user id never comes from anything the
/// client controls besides the signed/listed credential.
public struct Authenticator: Sendable {
    let jwt: JWTVerifier?
    let tokens: TokensFile?
    /// Single mode on loopback with no auth configured: (user, token).
    public let generated: (user: UserID, token: String)?
    let adminToken: [UInt8]?

    public init(jwt: JWTVerifier?, tokens: TokensFile?, generated: (user: UserID, token: String)?, adminToken: String?) {
        self.jwt = jwt
        self.tokens = tokens
        self.generated = generated
        self.adminToken = adminToken.map { Array($0.utf8) }
    }

    /// Builds the authenticator the configuration asks for. With no credential source configured, only
    /// single mode on a loopback address may start; it then gets a random token for `LAB_LOCAL_USER`.
    /// `onTokensReloadError` hears about tokens-file reloads that failed (logging, metrics).
    public static func make(
        _ config: LabConfig, onTokensReloadError: @escaping @Sendable (TokensFile.ReloadError) -> Void = { _ in }
    ) async throws(ConfigError) -> Authenticator {
        let jwt = try await JWTVerifier.make(config)
        let tokens = try config.tokensFile.map { path throws(ConfigError) in try TokensFile(path: path, report: onTokensReloadError) }
        var generated: (UserID, String)?
        if jwt == nil, tokens == nil {
            guard config.mode == .single, config.listensOnLoopback else {
                throw ConfigError(
                    variable: "LAB_JWT_SECRET", value: nil,
                    expected: "an authentication source (LAB_JWT_SECRET, LAB_JWT_PUBLIC_KEY_FILE or LAB_TOKENS_FILE); "
                        + "a generated token is only allowed in single mode on a loopback LAB_HOST")
            }
            generated = (UserID(config.localUser)!, randomToken())
        }
        return Authenticator(jwt: jwt, tokens: tokens, generated: generated, adminToken: config.adminToken)
    }

    /// The user owning `token`, or why not.
    public func authenticate(_ token: String?) async -> Result<UserID, AuthFailure> {
        guard let token, !token.isEmpty else { return .failure(.missing) }
        guard token.utf8.count <= 8192 else { return .failure(.malformed) }
        if let tokens, let user = tokens.user(for: token) { return .success(user) }
        if let generated, constantTimeEqual(Array(generated.token.utf8), Array(token.utf8)) {
            return .success(generated.user)
        }
        if let jwt, JWTVerifier.looksLikeJWT(token) { return await jwt.verify(token) }
        return .failure(jwt == nil ? .unknownToken : .malformed)
    }

    /// Whether `token` is the admin credential. Without `LAB_ADMIN_TOKEN` nothing is.
    public func isAdmin(_ token: String?) -> Bool {
        guard let adminToken, let token else { return false }
        return constantTimeEqual(adminToken, Array(token.utf8))
    }

    public var adminEnabled: Bool { adminToken != nil }

    /// Re-reads the tokens file if it changed (the periodic reload; errors go to the reporter).
    public func reloadTokens() { tokens?.reloadIfChanged() }
}

/// 32 random bytes as base64url (43 characters), from the system CSPRNG.
func randomToken() -> String {
    var rng = SystemRandomNumberGenerator()
    return Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
}
